package adversarial

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/room"
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

// TestLookAlikeIdentitiesStayApart: mallory holds genuine tokens whose sub
// or tenant only look like alice's or tenant t1's (a Cyrillic а, a case
// change, a trailing or zero-width space, a literal escape sequence),
// hoping the server takes them for the real ones. Each is a user or tenant
// of its own: the victim's rooms are refused to her, and what is sent to
// the victim does not reach her. A deployment that wants such ids refused
// outright sets JWTOptions.SubjectPattern, which the last case shows.
func TestLookAlikeIdentitiesStayApart(t *testing.T) {
	srv := Start(t, Config{})
	for _, tt := range []struct {
		name, sub, tenant string
		victimUser        string // "" for a tenant look-alike
		victimTenant      string
	}{
		{"cyrillic_a_in_the_user", "аlice", "t2", "alice", ""},
		{"upper_case_user", "ALICE", "t2", "alice", ""},
		{"trailing_space_in_the_user", "alice ", "t2", "alice", ""},
		{"zero_width_space_in_the_user", "alice\u200b", "t2", "alice", ""},
		{"escape_sequence_as_the_user", "auth0%7C42", "t2", "auth0|42", ""},
		{"upper_case_tenant", "mallory", "T1", "", "t1"},
		{"trailing_space_in_the_tenant", "mallory", "t1 ", "", "t1"},
		{"escape_sequence_as_the_tenant", "mallory", "t1%7Cx", "", "t1|x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := srv.Connect(t, Token(t, jwt.MapClaims{"sub": tt.sub, "tenant_id": tt.tenant}))
			ctx, cancel := context.WithTimeout(context.Background(), Wait)
			defer cancel()
			var err error
			if tt.victimUser != "" {
				ExpectError(t, c.Call(map[string]any{"type": "join", "room": room.User(tt.victimUser)}), "FORBIDDEN")
				err = srv.Hub.ToUser(ctx, tt.victimUser, "for.the.victim", nil)
			} else {
				ExpectError(t, c.Call(map[string]any{"type": "join", "room": room.Tenant(tt.victimTenant)}), "FORBIDDEN")
				err = srv.Hub.ToTenant(ctx, tt.victimTenant, "for.the.victim", nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			// Her own message comes after the victim's: had that reached
			// her, she would read it first.
			if err := srv.Hub.ToUser(ctx, tt.sub, "for.her", nil); err != nil {
				t.Fatal(err)
			}
			if f := c.Read(); f.Event != "for.her" {
				t.Fatalf("got %+v, want only her own message", f)
			}
		})
	}
	t.Run("subject_pattern_refuses_look_alikes_before_the_upgrade", func(t *testing.T) {
		strict := Start(t, Config{JWT: &auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompile(`[a-z0-9]+`)}})
		for _, sub := range []string{"аlice", "ALICE", "alice ", "alice\u200b", "auth0%7C42"} {
			_, resp, err := strict.Dial(t, Handshake{Token: Token(t, jwt.MapClaims{"sub": sub})})
			ExpectRefusal(t, resp, err, http.StatusUnauthorized, "UNAUTHORIZED")
		}
		strict.Connect(t, Token(t, jwt.MapClaims{"sub": "alice"}))
	})
}
