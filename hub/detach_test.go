package hub_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
)

// ServeHTTP returns after the upgrade, but guard.Limits' Middleware keeps
// counting the connection until it ends: the node limit still holds.
func TestNodeLimitCountsDetachedConnections(t *testing.T) {
	limits, err := guard.NewLimits(guard.LimitsOptions{PerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	srv := httptest.NewServer(limits.Middleware(e.hub))
	t.Cleanup(srv.Close)
	dial := func(user string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := http.Header{}
		h.Set("Origin", srv.URL)
		h.Set("Authorization", "Bearer "+token(t, claims{sub: user}))
		return websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"wsgate.v1"}})
	}
	first, _, err := dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := dial("bob")
	if err != nil {
		t.Fatal(err)
	}
	defer second.CloseNow()
	if n := limits.InFlight(); n != 2 {
		t.Fatalf("InFlight = %d with two open connections, want 2", n)
	}
	if _, resp, err := dial("carol"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection on a full node: %v, %v; want 503", err, resp)
	}
	_ = first.Close(websocket.StatusNormalClosure, "")
	eventually(t, "the closed connection's slot", func() bool { return limits.InFlight() == 1 })
	third, _, err := dial("carol")
	if err != nil {
		t.Fatalf("dial after a slot freed: %v", err)
	}
	third.CloseNow()
	second.CloseNow()
	eventually(t, "every slot back", func() bool { return limits.InFlight() == 0 && e.hub.Connections() == 0 })
}

// panickyPresence is a presence store whose Add, or Remove when onRemove
// is set, panics for one user.
type panickyPresence struct {
	user     string
	onRemove bool
}

func (p panickyPresence) Add(_, userID, _ string) {
	if userID == p.user && !p.onRemove {
		panic("presence exploded")
	}
}
func (p panickyPresence) Remove(_, userID, _ string) {
	if userID == p.user && p.onRemove {
		panic("presence exploded on remove")
	}
}
func (panickyPresence) Users(context.Context, string) ([]string, error) {
	return nil, nil
}

// A panic on the connection's own goroutine outside the places that recover
// user code (here, a Presence store while joining the automatic rooms) ends
// that connection and is logged; it does not crash the process, and nothing
// leaks.
func TestPanicOnTheConnectionGoroutineIsRecovered(t *testing.T) {
	limits, err := guard.NewLimits(guard.LimitsOptions{PerUser: 5})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *hub.Options) {
		o.Admit = limits.Admit
		o.Presence = panickyPresence{user: "mallory"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := e.dialRaw(ctx, e.header(token(t, claims{sub: "mallory"})))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err == nil {
		t.Fatal("the connection survived a panic")
	}
	eventually(t, "the panic logged and the slot released", func() bool {
		return strings.Contains(e.log.String(), `"msg":"panic"`) && limits.Users() == 0 && e.hub.Connections() == 0
	})
	// The hub still serves others.
	e.connect(claims{sub: "alice"})
}

// A panic in user code while a connection is cleaned up (a Presence store
// that fails on Remove) is logged; the connection is still released and
// the process lives on.
func TestPanicDuringCleanupIsRecovered(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.Presence = panickyPresence{user: "mallory", onRemove: true} })
	c := e.connect(claims{sub: "mallory"})
	c.ws.CloseNow()
	eventually(t, "the panic logged and the connection released", func() bool {
		return strings.Contains(e.log.String(), "presence exploded on remove") && e.hub.Connections() == 0
	})
	e.connect(claims{sub: "alice"})
}
