package guard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/protocol"
)

func newTestLimits(t testing.TB, opts guard.LimitsOptions) *guard.Limits {
	t.Helper()
	l, err := guard.NewLimits(opts)
	if err != nil {
		t.Fatalf("NewLimits: %v", err)
	}
	return l
}

func TestNewLimits(t *testing.T) {
	for _, opts := range []guard.LimitsOptions{{PerUser: -1}, {PerNode: -1}} {
		if l, err := guard.NewLimits(opts); err == nil || l != nil {
			t.Errorf("NewLimits(%+v) = %v, %v; want nil and an error", opts, l, err)
		}
	}
}

func TestLimitsAdmit(t *testing.T) {
	ctx := context.Background()
	t.Run("user_over_the_limit_gets_a_429_refusal", func(t *testing.T) {
		l := newTestLimits(t, guard.LimitsOptions{PerUser: 2})
		for range 2 {
			if _, err := l.Admit(ctx, "alice"); err != nil {
				t.Fatalf("Admit under the limit: %v", err)
			}
		}
		release, err := l.Admit(ctx, "alice")
		var re *protocol.Refusal
		if !errors.As(err, &re) || !errors.Is(err, guard.ErrUserLimit) {
			t.Fatalf("Admit over the limit = %v, want a *protocol.Refusal wrapping ErrUserLimit", err)
		}
		if re.Status != http.StatusTooManyRequests || re.Code != protocol.CodeConnectionLimit || re.RetryAfter <= 0 {
			t.Errorf("refusal = %+v, want 429 %s with a Retry-After", re, protocol.CodeConnectionLimit)
		}
		release() // the no-op release of a refusal must be callable
		if _, err := l.Admit(ctx, "bob"); err != nil {
			t.Errorf("another user is refused: %v", err)
		}
	})
	t.Run("release_is_idempotent_and_frees_the_map_entry", func(t *testing.T) {
		l := newTestLimits(t, guard.LimitsOptions{PerUser: 2})
		r1, _ := l.Admit(ctx, "alice")
		r2, _ := l.Admit(ctx, "alice")
		r1()
		r1()
		if n := l.Users(); n != 1 {
			t.Fatalf("Users = %d after releasing one of two slots twice, want 1", n)
		}
		if _, err := l.Admit(ctx, "alice"); err != nil {
			t.Fatalf("a released slot is not reusable: %v", err)
		}
		r2()
		if _, err := l.Admit(ctx, "alice"); err != nil {
			t.Fatalf("Admit: %v", err)
		}
		if _, err := l.Admit(ctx, "alice"); err == nil {
			t.Fatal("a double release freed two slots")
		}
	})
	t.Run("entry_is_deleted_at_zero", func(t *testing.T) {
		l := newTestLimits(t, guard.LimitsOptions{})
		for i := range 100 {
			release, err := l.Admit(ctx, fmt.Sprintf("user-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			release()
		}
		if n := l.Users(); n != 0 {
			t.Fatalf("Users = %d after every slot was released, want 0", n)
		}
	})
	t.Run("empty_user_is_an_error", func(t *testing.T) {
		l := newTestLimits(t, guard.LimitsOptions{})
		if _, err := l.Admit(ctx, ""); err == nil || l.Users() != 0 {
			t.Fatalf("Admit(\"\") = %v with %d users, want an error and no slot", err, l.Users())
		}
	})
	t.Run("done_context_takes_no_slot", func(t *testing.T) {
		l := newTestLimits(t, guard.LimitsOptions{})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := l.Admit(cctx, "alice"); !errors.Is(err, context.Canceled) || l.Users() != 0 {
			t.Fatalf("Admit on a cancelled context = %v with %d users", err, l.Users())
		}
	})
}

func TestLimitsMiddleware(t *testing.T) {
	t.Run("panicking_handler_releases_its_slot", func(t *testing.T) {
		l := newTestLimits(t, guard.LimitsOptions{PerNode: 1})
		h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
		func() {
			defer func() { _ = recover() }()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ws", nil))
		}()
		if n := l.InFlight(); n != 0 {
			t.Fatalf("InFlight = %d after a panic, want 0", n)
		}
	})
}

// wsHub stands in for the hub: authenticate (here, trust a header), Admit,
// accept, then read until the client goes. A client message "close-me" makes
// the server close the connection.
type wsHub struct {
	limits   *guard.Limits
	accepted atomic.Int64
	// upgraded receives a value after each upgrade is counted, while it has
	// room: a client's dial returns once the 101 is read, which can be
	// before the handler gets to count it, so tests wait here instead.
	upgraded chan struct{}
}

func (h *wsHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	release, err := h.limits.Admit(r.Context(), r.Header.Get("X-Test-User"))
	defer release()
	if err != nil {
		var re *protocol.Refusal
		if errors.As(err, &re) {
			re.Write(w)
		} else {
			(&protocol.Refusal{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthorized, Message: "no user"}).Write(w)
		}
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	h.accepted.Add(1)
	select {
	case h.upgraded <- struct{}{}:
	default:
	}
	for {
		_, msg, err := c.Read(context.Background())
		if err != nil {
			return
		}
		if string(msg) == "close-me" {
			_ = c.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
}

func newWSServer(t *testing.T, l *guard.Limits) (*httptest.Server, *wsHub) {
	t.Helper()
	hub := &wsHub{limits: l, upgraded: make(chan struct{}, 16)}
	srv := httptest.NewServer(guard.Chain(hub, l.Middleware)) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv, hub
}

func dialAs(ctx context.Context, srv *httptest.Server, user string) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		HTTPClient: srv.Client(),
		HTTPHeader: http.Header{"X-Test-User": {user}},
	})
}

func TestLimitsOverWebSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Run("user_over_the_limit_gets_429_before_the_upgrade", func(t *testing.T) {
		logger, logs := newTestLogger()
		l := newTestLimits(t, guard.LimitsOptions{PerUser: 2, Logger: logger})
		srv, hub := newWSServer(t, l)
		var open []*websocket.Conn
		for range 2 {
			c, _, err := dialAs(ctx, srv, "alice")
			if err != nil {
				t.Fatalf("dial under the limit: %v", err)
			}
			defer c.CloseNow()
			open = append(open, c)
		}
		for range 2 {
			select {
			case <-hub.upgraded:
			case <-ctx.Done():
				t.Fatalf("the server did not count both upgrades: %d", hub.accepted.Load())
			}
		}
		_, resp, err := dialAs(ctx, srv, "alice")
		if err == nil || resp == nil {
			t.Fatalf("third connection: err %v, resp %v; want a refused handshake", err, resp)
		}
		assertRefusal(t, resp.StatusCode, resp.Header, resp.Body, http.StatusTooManyRequests, "CONNECTION_LIMIT_EXCEEDED", "10")
		if n := hub.accepted.Load(); n != 2 {
			t.Errorf("server upgraded %d connections, want 2", n)
		}
		// Admit leaves the log line to its caller, which answers the
		// refusal (the hub logs every refusal it writes, once).
		if lines := logs.lines(t); len(lines) != 0 {
			t.Fatalf("Admit logged %d lines, want none:\n%s", len(lines), logs)
		}
		for _, c := range open {
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
		waitFor(t, 5*time.Second, "every slot to be released", func() bool {
			return l.InFlight() == 0 && l.Users() == 0
		})
	})
	t.Run("node_full_gets_503_and_recovers_when_a_connection_ends", func(t *testing.T) {
		logger, logs := newTestLogger()
		l := newTestLimits(t, guard.LimitsOptions{PerNode: 2, Logger: logger})
		srv, _ := newWSServer(t, l)
		first, _, err := dialAs(ctx, srv, "alice")
		if err != nil {
			t.Fatal(err)
		}
		second, _, err := dialAs(ctx, srv, "bob")
		if err != nil {
			t.Fatal(err)
		}
		defer second.CloseNow()
		_, resp, err := dialAs(ctx, srv, "carol")
		if err == nil || resp == nil {
			t.Fatalf("third connection on a full node: err %v; want a refused handshake", err)
		}
		assertRefusal(t, resp.StatusCode, resp.Header, resp.Body, http.StatusServiceUnavailable, "UNAVAILABLE", "5")
		assertSecurityLine(t, logs, map[string]string{"event": "node_full", "ip": "127.0.0.1"})

		_ = first.Close(websocket.StatusNormalClosure, "")
		waitFor(t, 5*time.Second, "the closed connection's slot", func() bool { return l.InFlight() == 1 })
		c, _, err := dialAs(ctx, srv, "carol")
		if err != nil {
			t.Fatalf("dial after a slot freed: %v", err)
		}
		c.CloseNow()
	})
}

// TestLimitsDoNotLeak opens and drops thousands of real connections, ending
// them every way a connection can end, and checks that every slot comes back.
func TestLimitsDoNotLeak(t *testing.T) {
	const workers, perWorker = 48, 64 // 3,072 connections
	l := newTestLimits(t, guard.LimitsOptions{PerUser: 2})
	srv, hub := newWSServer(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	var refused atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			user := fmt.Sprintf("user-%d", w)
			for i := range perWorker {
				if err := oneConnection(ctx, srv, user, i%3, &refused); err != nil {
					errs <- fmt.Errorf("worker %d connection %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, 10*time.Second, "every slot to be released", func() bool {
		return l.InFlight() == 0 && l.Users() == 0
	})
	// A user may be refused while the server is still tearing down their
	// previous connection; that race must stay rare.
	if up := hub.accepted.Load(); up < workers*perWorker*9/10 {
		t.Errorf("only %d of %d connections upgraded (%d refused)", up, workers*perWorker, refused.Load())
	}
	t.Logf("%d upgraded, %d refused by the user limit", hub.accepted.Load(), refused.Load())
}

// oneConnection dials, exchanges a message and ends the connection by mode:
// 0 client closes cleanly, 1 client drops TCP without a close frame, 2 the
// server closes.
func oneConnection(ctx context.Context, srv *httptest.Server, user string, mode int, refused *atomic.Int64) error {
	c, resp, err := dialAs(ctx, srv, user)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			refused.Add(1)
			return nil
		}
		return err
	}
	defer c.CloseNow()
	switch mode {
	case 0:
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			return err
		}
		return c.Close(websocket.StatusNormalClosure, "")
	case 1:
		return c.CloseNow()
	default:
		if err := c.Write(ctx, websocket.MessageText, []byte("close-me")); err != nil {
			return err
		}
		_, _, err := c.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			return fmt.Errorf("want a normal close from the server, got %w", err)
		}
		return nil
	}
}
