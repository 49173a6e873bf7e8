package socketio

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/internal/testutil"
)

// A token that expires ends its namespace with the error event and a
// DISCONNECT, after which socket.io-client does not reconnect; the
// session and its other namespaces go on.
func TestTokenExpiryDisconnectsTheNamespace(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial(e.header())
	c.connect("/notifications", `{"token":"alice"}`)
	c.connect("/", `{"token":"short:300:alice"}`)
	c.expect(`42["error",{"code":"TOKEN_EXPIRED","message":"token expired"}]`)
	c.expect(`41`)
	testutil.Eventually(t, wait, "the expired connection released", func() bool { return e.main.Connections() == 0 })
	c.send(`42/notifications,1["echo",{"text":"on"}]`)
	c.expect(`43/notifications,1[{"text":"on"}]`)
	if !strings.Contains(e.logs.String(), `"reason":"token_expired"`) {
		t.Fatal("the disconnect's reason is not logged")
	}
	// The namespace can be joined again with a fresh token.
	c.connect("/", `{"token":"alice"}`)
}

// A user disconnected by the server gets a DISCONNECT on each namespace
// of that hub, and no reconnect.
func TestDisconnectUserIsADisconnect(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial(e.header())
	c.connect("/", `{"token":"bob"}`)
	if err := e.main.DisconnectUser(context.Background(), "bob", "logout"); err != nil {
		t.Fatal(err)
	}
	c.expect(`41`)
	testutil.Eventually(t, wait, "released", func() bool { return e.main.Connections() == 0 })
}

// The client's DISCONNECT leaves the namespace; the hub releases the
// connection and nothing is sent back.
func TestClientDisconnect(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial(e.header())
	c.connect("/", `{"token":"bob"}`)
	c.send(`41`)
	testutil.Eventually(t, wait, "released", func() bool { return e.main.Connections() == 0 })
	if !strings.Contains(e.logs.String(), `"reason":"client_closed"`) {
		t.Fatal("the disconnect's reason is not logged")
	}
	c.connect("/", `{"token":"bob"}`)
}

// A hub's shutdown closes the Engine.IO sessions of its connections with
// 1012 and no DISCONNECT, so that socket.io-client reconnects, to another
// node; new CONNECTs to it close their session the same way.
func TestHubShutdownMakesClientsReconnect(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	p := e.poll(e.header())
	p.post(`40{"token":"bob"}`)
	p.get()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		done <- e.main.Shutdown(ctx)
	}()
	if code := c.closed(); code != websocket.StatusServiceRestart {
		t.Fatalf("closed with %v", code)
	}
	if st, got := p.get(); st != http.StatusOK || len(got) != 1 || got[0] != "1" {
		t.Fatalf("polling: %d %q, want the close packet", st, got)
	}
	if err := <-done; err != nil {
		t.Fatalf("the hub did not drain: %v", err)
	}
	late := e.dial(e.header())
	late.send(`40{"token":"carol"}`)
	if code := late.closed(); code != websocket.StatusServiceRestart {
		t.Fatalf("a CONNECT to the stopped hub: closed with %v", code)
	}
}

// Server.Shutdown refuses new sessions and closes the others (1012 on a
// WebSocket, the close packet over polling, after what was queued); the
// hubs release their connections and stay up.
func TestServerShutdown(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	p := e.poll(e.header())
	p.post(`40{"token":"bob"}`)
	p.get()
	if err := e.notif.ToAll(context.Background(), "nobody", nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	if code := c.closed(); code != websocket.StatusServiceRestart {
		t.Fatalf("closed with %v", code)
	}
	if _, got := p.get(); len(got) == 0 || got[len(got)-1] != "1" {
		t.Fatalf("polling got %q, want the close packet last", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.main.Connections() != 0 || e.srv.Sessions() != 0 {
		t.Fatalf("%d connections, %d sessions after Shutdown", e.main.Connections(), e.srv.Sessions())
	}
	if st, _ := httpDo(t, http.MethodGet, e.url+"/socket.io/?EIO=4&transport=polling", e.header(), ""); st != http.StatusServiceUnavailable {
		t.Fatalf("a handshake after Shutdown: %d", st)
	}
	if err := e.main.Ready(context.Background()); err != nil {
		t.Fatalf("the hub went down with the server: %v", err)
	}
}

// A session that joins no namespace within ConnectTimeout is closed.
func TestConnectTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ConnectTimeout = 100 * time.Millisecond }, nil)
	e.dial(e.header()).closed() // within the read deadline
	testutil.Eventually(t, wait, "the session gone", func() bool { return e.srv.Sessions() == 0 })
}

// A panic while a CONNECT is handled (in user code such as AuthToken)
// ends that session, logged, and nothing else.
func TestPanicInConnectEndsTheSessionOnly(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.AuthToken = func(payload json.RawMessage) string {
			if strings.Contains(string(payload), "boom") {
				panic("boom")
			}
			return tokenMember(payload)
		}
	}, nil)
	c := e.dial(e.header())
	c.send(`40{"token":"boom"}`)
	if code := c.closed(); code != websocket.StatusInternalError {
		t.Fatalf("closed with %v", code)
	}
	if !strings.Contains(e.logs.String(), "boom") {
		t.Fatal("the panic is not logged")
	}
	e.dial(e.header()).connect("/", `{"token":"alice"}`)
}
