package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// A connection cannot leave the rooms the server put it in, and what is
// sent to its user reaches it by identity whatever rooms it is in.
func TestNoEscapeFromOneselfByLeaving(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect(claims{sub: "mallory", tenant: "acme"})
	for i, name := range []string{"user:mallory", "tenant:acme"} {
		c.send(map[string]any{"type": "leave", "id": i + 1, "room": name})
		if f := c.next(); f.Code != hub.CodeForbidden {
			t.Fatalf("leave %s: %+v, want FORBIDDEN", name, f)
		}
	}
	if err := e.hub.ToUser(context.Background(), "mallory", "notice", nil); err != nil {
		t.Fatal(err)
	}
	assertNext(t, c, "notice")
	if err := e.hub.DisconnectUser(context.Background(), "mallory", "logout"); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Type != "bye" {
		t.Fatalf("got %+v, want bye", f)
	}
	if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseUnauthorized) {
		t.Fatalf("close = %d, want 4001", got)
	}
}

// A refreshed token that changes tenant or roles takes away what the old
// one granted: automatic rooms follow the new identity, and every other
// room is checked against the policy again.
func TestRefreshTakesAwayWhatTheNewTokenDoesNotGrant(t *testing.T) {
	docs := func(_ context.Context, id auth.Identity, r room.Name) (bool, error) {
		return strings.HasPrefix(r.Arg, id.TenantID+"-"), nil // doc:<tenant>-<n>
	}
	policy, err := room.NewPolicy(room.PolicyOptions{GlobalRole: "admin", Rules: map[string]room.Rule{"doc": docs}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *hub.Options) { o.GlobalRole = "admin"; o.Rooms = policy })
	auth := func(c *client, id int, cl claims) frame {
		c.send(map[string]any{"type": "auth", "id": id, "data": map[string]string{"token": token(t, cl)}})
		return c.next()
	}
	t.Run("tenant_change", func(t *testing.T) {
		c := e.connect(claims{sub: "tina", tenant: "acme"})
		if f := join(c, 1, "doc:acme-1"); f.Type != "ack" {
			t.Fatalf("join: %+v", f)
		}
		if f := auth(c, 2, claims{sub: "tina", tenant: "globex"}); f.Type != "ack" {
			t.Fatalf("refresh: %+v", f)
		}
		// Neither the old tenant nor the old tenant's document reach it;
		// the new tenant does.
		ctx := context.Background()
		_ = e.hub.ToTenant(ctx, "acme", "old-tenant", nil)
		_ = e.hub.Broadcast(ctx, "doc:acme-1", "old-doc", nil)
		_ = e.hub.ToTenant(ctx, "globex", "new-tenant", nil)
		assertNext(t, c, "new-tenant")
		users, _ := e.hub.Presence(ctx, "tenant:acme")
		if len(users) != 0 {
			t.Fatalf("still present in the old tenant: %v", users)
		}
	})
	t.Run("role_change", func(t *testing.T) {
		c := e.connect(claims{sub: "root", tenant: "acme", roles: []string{"admin"}})
		if f := auth(c, 1, claims{sub: "root", tenant: "acme", roles: []string{}}); f.Type != "ack" {
			t.Fatalf("refresh: %+v", f)
		}
		ctx := context.Background()
		_ = e.hub.Broadcast(ctx, "global", "for-admins", nil)
		_ = e.hub.ToUser(ctx, "root", "direct", nil)
		assertNext(t, c, "direct")
		if f := join(c, 2, "global"); f.Code != hub.CodeForbidden {
			t.Fatalf("rejoining global without the role: %+v", f)
		}
	})
}

// Ids outside the room-name alphabet (Auth0's "auth0|…", colons, spaces,
// non-ASCII) authenticate, and the server can reach and log them out.
func TestUsersWithAnyIDAreReachable(t *testing.T) {
	bus := memory.NewBus()
	a := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker() })
	b := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker() })
	for _, id := range []string{"auth0|507f1f77bcf86cd799439011", "a:b/c d", "Zoë"} {
		t.Run(id, func(t *testing.T) {
			c := b.connect(claims{sub: id})
			if err := a.hub.ToUser(context.Background(), id, "hello", nil); err != nil {
				t.Fatal(err)
			}
			assertNext(t, c, "hello")
			if err := a.hub.DisconnectUser(context.Background(), id, "logout"); err != nil {
				t.Fatal(err)
			}
			if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseUnauthorized) {
				t.Fatalf("close = %d, want 4001", got)
			}
		})
	}
}

// JoinUser and LeaveUser reach every connection of a user on every node.
func TestJoinAndLeaveUserAcrossNodes(t *testing.T) {
	bus := memory.NewBus()
	a := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker() })
	b := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker() })
	c1, c2 := a.connect(claims{sub: "pat"}), b.connect(claims{sub: "pat"})
	ctx := context.Background()
	if err := a.hub.JoinUser(ctx, "pat", "project:7"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*env{a, b} {
		eventually(t, "pat's connections in the room", func() bool {
			users, _ := e.hub.Presence(ctx, "project:7")
			return len(users) == 1 && users[0] == "pat"
		})
	}
	if err := b.hub.Broadcast(ctx, "project:7", "update", nil); err != nil {
		t.Fatal(err)
	}
	assertNext(t, c1, "update")
	assertNext(t, c2, "update")
	if err := b.hub.LeaveUser(ctx, "pat", "project:7"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*env{a, b} {
		eventually(t, "the room empty", func() bool {
			users, _ := e.hub.Presence(ctx, "project:7")
			return len(users) == 0
		})
	}
	_ = a.hub.Broadcast(ctx, "project:7", "after", nil)
	_ = a.hub.ToUser(ctx, "pat", "marker", nil)
	assertNext(t, c1, "marker")
	assertNext(t, c2, "marker")
}

// Without CheckOrigin, the default does not trust the Host header: a
// DNS-rebinding page, whose Origin and Host name the attacker's domain
// resolved to this server, is refused.
func TestDefaultOriginResistsDNSRebinding(t *testing.T) {
	e := newEnv(t, nil)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)
	rebound := "rebind.attacker.example:" + port
	status, body := rawHandshake(t, addr, rebound, map[string]string{
		"Origin":        "http://" + rebound,
		"Authorization": "Bearer " + token(t, claims{sub: "victim"}),
	})
	if status != http.StatusForbidden {
		t.Fatalf("status %d (%s), want 403", status, body)
	}
}

// A malformed Sec-WebSocket-Key is refused with the protocol's JSON body,
// which does not repeat what the client sent.
func TestMalformedKeyIsNotReflected(t *testing.T) {
	e := newEnv(t, nil)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	status, body := rawHandshake(t, addr, addr, map[string]string{
		"Origin":            e.srv.URL,
		"Sec-WebSocket-Key": "<script>alert(1)</script>",
	})
	if status != http.StatusBadRequest || !strings.Contains(body, `"code":"BAD_REQUEST"`) || strings.Contains(body, "script") {
		t.Fatalf("status %d, body %q", status, body)
	}
}

// rawHandshake sends a WebSocket handshake with the given Host and headers
// and returns the status and body.
func rawHandshake(t *testing.T, addr, host string, headers map[string]string) (int, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	h := map[string]string{
		"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "wsgate.v1",
	}
	for k, v := range headers {
		h[k] = v
	}
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\n", host)
	for k, v := range h {
		req += k + ": " + v + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// join asks to join a room and returns the answer.
func join(c *client, id int, name string) frame {
	c.send(map[string]any{"type": "join", "id": id, "room": name})
	return c.next()
}
