package adversarial

import (
	"context"
	"testing"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// TestTenantEscapes has mallory, of tenant t2, try to reach tenant t1's
// rooms and alice's: by name, by look-alike names, and by envelopes that a
// lenient JSON decoder would read as a join of t1. None gets her in, and a
// broadcast to t1 reaches alice only.
func TestTenantEscapes(t *testing.T) {
	srv := Start(t, Config{})
	alice := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "alice", "tenant_id": "t1"}))
	mallory := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "mallory", "tenant_id": "t2"}))

	for _, tt := range []struct{ room, code string }{
		{"tenant:t1", "FORBIDDEN"},
		{"user:alice", "FORBIDDEN"},
		{"global", "FORBIDDEN"},
		{"tenant:T1", "FORBIDDEN"},
		{"tenant:t1 ", "INVALID_MESSAGE"},
		{"tenant:t1\u200b", "INVALID_MESSAGE"},
		{"tenant:%74%31", "INVALID_MESSAGE"}, // "t1", escaped though it needs no escape
		{"tenant:t2:t1", "INVALID_MESSAGE"},
		{"tenant:*", "INVALID_MESSAGE"},
		{"Tenant:t1", "INVALID_MESSAGE"},
	} {
		t.Run("join_"+tt.room, func(t *testing.T) {
			ExpectError(t, mallory.Call(map[string]any{"type": "join", "room": tt.room}), tt.code)
		})
	}
	for _, raw := range []string{
		`{"type":"join","ROOM":"tenant:t1"}`,
		`{"type":"join","room":"tenant:t2","room":"tenant:t1"}`,
		`{"type":"join","room":"tenant:t1","type":"leave"}`,
		`{"Type":"join","room":"tenant:t1"}`,
		`{"type":"join","room":"tenant:t1"}{"type":"join","room":"tenant:t1"}`,
	} {
		t.Run("envelope_"+raw, func(t *testing.T) {
			mallory.SendRaw(websocket.MessageText, []byte(raw))
			ExpectError(t, mallory.Read(), "INVALID_MESSAGE")
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := srv.Hub.ToTenant(ctx, "t1", "t1.only", nil); err != nil {
		t.Fatal(err)
	}
	if f := alice.Read(); f.Event != "t1.only" {
		t.Fatalf("alice got %+v", f)
	}
	// mallory's own tenant's broadcast comes after t1's: if t1's had
	// reached her, she would read it first.
	if err := srv.Hub.ToTenant(ctx, "t2", "t2.only", nil); err != nil {
		t.Fatal(err)
	}
	if f := mallory.Read(); f.Event != "t2.only" {
		t.Fatalf("mallory got %+v, want only her own tenant's broadcast", f)
	}
}

// TestUsersOutsideTheNameAlphabetAreReachable: ids such as Auth0's
// "auth0|…" authenticate, so they must be reachable by ToUser and
// DisconnectUser, and such a user may join their own room only.
func TestUsersOutsideTheNameAlphabetAreReachable(t *testing.T) {
	srv := Start(t, Config{})
	const sub = "auth0|507f1f77bcf86cd799439011"
	c := srv.Connect(t, Token(t, jwt.MapClaims{"sub": sub}))
	other := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "auth0%7C507f1f77bcf86cd799439011"}))
	ExpectError(t, other.Call(map[string]any{"type": "join", "room": "user:auth0%7C507f1f77bcf86cd799439011"}), "FORBIDDEN")

	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := srv.Hub.ToUser(ctx, sub, "for.you", nil); err != nil {
		t.Fatal(err)
	}
	if f := c.Read(); f.Event != "for.you" {
		t.Fatalf("got %+v", f)
	}
	// The look-alike's own message comes after: had it received the first,
	// it would read that one now.
	if err := srv.Hub.ToUser(ctx, "auth0%7C507f1f77bcf86cd799439011", "marker", nil); err != nil {
		t.Fatal(err)
	}
	if f := other.Read(); f.Event != "marker" {
		t.Fatalf("the look-alike id received %+v", f)
	}
}
