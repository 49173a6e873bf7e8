package adversarial

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// TestNoEscapeFromOneself has mallory, an admin of tenant acme, try to stop
// the server from reaching her before it logs her out: on two connections
// she leaves every room the server put her in, under every spelling she
// can think of. What is sent to her user, her tenant and the global room
// still reaches both connections, and DisconnectUser still logs both out.
func TestNoEscapeFromOneself(t *testing.T) {
	srv := Start(t, Config{})
	tok := Token(t, jwt.MapClaims{"sub": "mallory", "tenant_id": "acme", "roles": []string{GlobalRole}})
	conns := []*Conn{srv.Connect(t, tok), srv.Connect(t, tok)}
	for _, c := range conns {
		for _, name := range []string{"user:mallory", "tenant:acme", "global"} {
			ExpectError(t, c.Call(map[string]any{"type": "leave", "room": name}), "FORBIDDEN")
		}
		// Other spellings name other rooms, or none: leaving them may be
		// acked or refused, and changes nothing, as the deliveries show.
		for _, name := range []string{"user:%6Dallory", "user:Mallory", "user:mallory ", "user:", "user", "tenant:%61cme", "Global", "global:"} {
			if f := c.Call(map[string]any{"type": "leave", "room": name}); f.Type != "ack" && f.Code != "INVALID_MESSAGE" && f.Code != "FORBIDDEN" {
				t.Fatalf("leave %q: %+v", name, f)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := srv.Hub.ToUser(ctx, "mallory", "to.user", nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Hub.ToTenant(ctx, "acme", "to.tenant", nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Hub.Broadcast(ctx, room.Global, "to.global", nil); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		var got []string
		for range 3 {
			got = append(got, c.Read().Event)
		}
		slices.Sort(got)
		if want := []string{"to.global", "to.tenant", "to.user"}; !slices.Equal(got, want) {
			t.Fatalf("connection %d received %v, want %v", i, got, want)
		}
	}
	if err := srv.Hub.DisconnectUser(ctx, "mallory", "logout"); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if f := c.Read(); f.Type != "bye" {
			t.Fatalf("got %+v, want the bye", f)
		}
		c.ExpectClose(websocket.StatusCode(hub.CloseUnauthorized))
	}
}

// TestRefreshKeepsNothingTheNewTokenDoesNotGrant: mallory, an admin of
// tenant t1 reading t1's documents, is moved to another tenant or loses
// her role, and keeps her connection alive by refreshing in-band with the
// token her identity provider now issues, hoping to go on receiving what
// the old one granted. After the refresh nothing sent to a room the new
// token does not grant reaches her, she cannot join such a room again, and
// the rooms of her new identity are hers, automatic ones included.
func TestRefreshKeepsNothingTheNewTokenDoesNotGrant(t *testing.T) {
	docs := func(_ context.Context, id auth.Identity, r room.Name) (bool, error) {
		return strings.HasPrefix(r.Arg, id.TenantID+"-"), nil // doc:<tenant>-<name>
	}
	policy, err := room.NewPolicy(room.PolicyOptions{GlobalRole: GlobalRole, Rules: map[string]room.Rule{"doc": docs}})
	if err != nil {
		t.Fatal(err)
	}
	srv := Start(t, Config{Hub: func(o *hub.Options) { o.Rooms = policy }})
	admin := []string{GlobalRole}
	// Each case is another user, so that the connections of the cases
	// before, which end in the background, cannot blur the presence seen.
	// Her user room is kept and automatic in every case.
	tests := []struct {
		name, sub     string
		after         jwt.MapClaims
		lost, kept    []string
		auto, refused []string // automatic after the refresh; joins refused after it
	}{
		{"tenant_change", "mallory1", jwt.MapClaims{"tenant_id": "t2", "roles": admin},
			[]string{"tenant:t1", "doc:t1-plans"}, []string{"global"},
			[]string{"tenant:t2", "global"}, []string{"tenant:t1", "doc:t1-plans"}},
		{"role_change", "mallory2", jwt.MapClaims{"tenant_id": "t1", "roles": []string{"reader"}},
			[]string{"global"}, []string{"tenant:t1", "doc:t1-plans"},
			[]string{"tenant:t1"}, []string{"global"}},
		{"tenant_and_role_change", "mallory3", jwt.MapClaims{"tenant_id": "t2", "roles": nil},
			[]string{"tenant:t1", "doc:t1-plans", "global"}, nil,
			[]string{"tenant:t2"}, []string{"tenant:t1", "doc:t1-plans", "global"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self := room.User(tt.sub)
			kept, auto := append(slices.Clone(tt.kept), self), append(slices.Clone(tt.auto), self)
			tt.after["sub"] = tt.sub
			c := srv.Connect(t, Token(t, jwt.MapClaims{"sub": tt.sub, "tenant_id": "t1", "roles": admin}))
			if f := c.Call(map[string]any{"type": "join", "room": "doc:t1-plans"}); f.Type != "ack" {
				t.Fatalf("join before the refresh: %+v", f)
			}
			refresh := map[string]any{"token": Token(t, tt.after)}
			if f := c.Call(map[string]any{"type": "auth", "data": refresh}); f.Type != "ack" {
				t.Fatalf("refresh: %+v", f)
			}
			if got := received(t, srv, c, tt.sub, append(slices.Clone(tt.lost), kept...)); !sameSet(got, kept) {
				t.Fatalf("after the refresh, broadcasts reached her from %v; want %v only", got, kept)
			}
			for _, name := range tt.refused {
				ExpectError(t, c.Call(map[string]any{"type": "join", "room": name}), "FORBIDDEN")
			}
			for _, name := range auto {
				ExpectError(t, c.Call(map[string]any{"type": "leave", "room": name}), "FORBIDDEN")
			}
			for _, name := range tt.lost {
				users, err := srv.Hub.Presence(context.Background(), name)
				if err != nil || slices.Contains(users, tt.sub) {
					t.Fatalf("presence of %s: %v %v; want %s gone", name, users, err, tt.sub)
				}
			}
		})
	}
	t.Run("a_token_of_another_user_or_a_forged_one_changes_nothing", func(t *testing.T) {
		c := srv.Connect(t, Token(t, jwt.MapClaims{"tenant_id": "t1"}))
		for _, tok := range []string{
			Token(t, jwt.MapClaims{"sub": "alice", "tenant_id": "t1", "roles": admin}),
			Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"tenant_id": "t1", "roles": admin}),
			Sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), jwt.MapClaims{"tenant_id": "t1", "roles": admin}),
		} {
			ExpectError(t, c.Call(map[string]any{"type": "auth", "data": map[string]any{"token": tok}}), "UNAUTHORIZED")
		}
		if got := received(t, srv, c, "mallory", []string{"global", "user:alice", "tenant:t1"}); !sameSet(got, []string{"tenant:t1"}) {
			t.Fatalf("broadcasts reached her from %v; want tenant:t1 only", got)
		}
	})
}

// received broadcasts one event to each room, then a marker to user sub,
// and returns the rooms whose event reached c, sub's connection, before
// the marker.
func received(t *testing.T, srv *Server, c *Conn, sub string, rooms []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	for _, name := range rooms {
		if err := srv.Hub.Broadcast(ctx, name, "to."+name, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Hub.ToUser(ctx, sub, "marker", nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range len(rooms) + 1 {
		f := c.Read()
		if f.Event == "marker" {
			return got
		}
		got = append(got, strings.TrimPrefix(f.Event, "to."))
	}
	t.Fatalf("no marker after %v", got)
	return nil
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
