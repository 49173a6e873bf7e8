package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// fastBackoff keeps reconnect tests quick.
var fastBackoff = client.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}

// TestReconnectAfterTheServerIsKilled kills the process the hard way in the
// middle of a call, restarts a fresh hub (no memory of the client) on the
// same address, and checks that the call in flight failed, the call made
// during the outage went through, and the client rejoined its room.
func TestReconnectAfterTheServerIsKilled(t *testing.T) {
	first := newHub(t, nil)
	entered := make(chan struct{}, 1)
	hub.Handle(first, "block", func(ctx hub.Context, _ Text) (struct{}, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	s := startServer(t, first)
	rec := newRecorder()
	opts := s.options(t, "alice")
	opts.Backoff = fastBackoff
	rec.attach(&opts)
	c := dial(t, opts)
	ctx := context.Background()
	for _, r := range []string{"chat:1", "chat:2"} {
		if err := c.Join(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Leave(ctx, "chat:2"); err != nil {
		t.Fatal(err)
	}
	oldID := c.ConnID()

	inFlight := make(chan error, 1)
	go func() {
		_, err := client.Call[struct{}](ctx, c, "block", Text{"x"})
		inFlight <- err
	}()
	<-entered
	s.kill()

	select {
	case err := <-inFlight:
		if !errors.Is(err, client.ErrDisconnected) {
			t.Fatalf("call in flight: %v, want ErrDisconnected", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("call in flight did not fail")
	}
	st := rec.waitPhase(t, client.Reconnecting, 1)
	if st.Attempt != 1 || st.Code != 0 || st.Err == nil {
		t.Fatalf("first Reconnecting = %+v, want attempt 1 after a drop without close frame", st)
	}
	// Let a few attempts hit the closed port before the node comes back.
	rec.waitPhase(t, client.Reconnecting, 3)

	duringOutage := make(chan error, 1)
	go func() {
		got, err := client.Call[Text](ctx, c, "echo", Text{"queued"})
		if err == nil && got.Text != "queued" {
			err = fmt.Errorf("echo = %+v", got)
		}
		duringOutage <- err
	}()

	second := newHub(t, nil)
	s.restart(second)
	st = rec.waitPhase(t, client.Connected, 2)
	if st.ConnID == oldID || st.ConnID != c.ConnID() || st.Err != nil {
		t.Fatalf("second Connected = %+v (old id %q)", st, oldID)
	}
	if err := <-duringOutage; err != nil {
		t.Fatalf("call made during the outage: %v", err)
	}
	// The fresh hub knows of chat:1 only through the rejoin; chat:2 was left.
	for _, r := range []string{"chat:2", "chat:1"} {
		if err := second.Broadcast(ctx, r, "news", Text{r}); err != nil {
			t.Fatal(err)
		}
	}
	ev := rec.waitEvent(t, "news")
	if ev.Room != "chat:1" {
		t.Fatalf("first news came through %q, want chat:1", ev.Room)
	}
	phases := rec.phases()
	want := []client.Phase{client.Connecting, client.Connected}
	for range len(phases) - 3 {
		want = append(want, client.Reconnecting)
	}
	want = append(want, client.Connected)
	if fmt.Sprint(phases) != fmt.Sprint(want) {
		t.Fatalf("states = %v, want %v", phases, want)
	}
}

// TestGracefulShutdownMovesTheClientToAnotherHub: the load balancer sends
// new connections to a second hub, the first shuts down (bye, 1012), and
// the client reconnects at once (within the first backoff window) to the
// second, rejoining its room there.
func TestGracefulShutdownMovesTheClientToAnotherHub(t *testing.T) {
	first := newHub(t, nil)
	s := startServer(t, first)
	rec := newRecorder()
	opts := s.options(t, "alice")
	opts.Backoff = client.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	rec.attach(&opts)
	c := dial(t, opts)
	ctx := context.Background()
	if err := c.Join(ctx, "chat:1"); err != nil {
		t.Fatal(err)
	}

	second := newHub(t, nil)
	s.setHandler(second)
	shutdown(first)

	st := rec.waitPhase(t, client.Reconnecting, 1)
	if st.Code != protocol.CloseServiceRestart || st.Delay >= opts.Backoff.Min {
		t.Fatalf("Reconnecting = %+v, want code 1012 and a delay under %v", st, opts.Backoff.Min)
	}
	rec.waitPhase(t, client.Connected, 2)
	if second.Connections() != 1 {
		t.Fatalf("second hub has %d connections", second.Connections())
	}
	if err := second.Broadcast(ctx, "chat:1", "news", Text{"hello"}); err != nil {
		t.Fatal(err)
	}
	if ev := rec.waitEvent(t, "news"); ev.Room != "chat:1" {
		t.Fatalf("news = %+v", ev)
	}
}

// TestTerminalCausesStopReconnecting drops a connected client in ways that
// forbid coming back, and checks that it stops (Closed with the cause,
// every call failing with ErrClosed) after at most the handshakes the
// policy allows.
func TestTerminalCausesStopReconnecting(t *testing.T) {
	cases := []struct {
		name      string
		firstAuth bool // hub.Options.FirstMessageAuth
		hubOpts   func(*hub.Options)
		client    func(t *testing.T, o *client.Options)
		// drop ends the first connection; s serves the hub, c is the client.
		drop       func(t *testing.T, s *server, c *client.Client)
		handshakes int  // the policy allows after the drop
		final      bool // the client must go to Closed without Reconnecting first
		check      func(t *testing.T, cause error)
	}{
		{
			name:  "4001_logout_by_the_server_is_final",
			drop:  logout,
			final: true,
			check: func(t *testing.T, cause error) {
				if !errors.Is(cause, client.ErrLoggedOut) || websocket.CloseStatus(cause) != websocket.StatusCode(protocol.CloseUnauthorized) ||
					!strings.Contains(cause.Error(), `"logout"`) {
					t.Fatalf("cause = %v, want ErrLoggedOut with close code 4001 and the bye's reason", cause)
				}
			},
		},
		{
			name:      "4001_and_Token_returns_the_refused_token_again",
			firstAuth: true,
			client: func(t *testing.T, o *client.Options) {
				o.TokenVia = client.TokenFirstMessage
				o.Token = goodThen(token(t, "alice", time.Hour), func(int) string { return "bad" })
			},
			drop:       dropConns,
			handshakes: 1,
			check:      wantClose(protocol.CloseUnauthorized),
		},
		{
			name:      "4001_and_the_new_token_is_refused_too",
			firstAuth: true,
			client: func(t *testing.T, o *client.Options) {
				o.TokenVia = client.TokenFirstMessage
				o.Token = goodThen(token(t, "alice", time.Hour), func(n int) string { return fmt.Sprint("bad-", n) })
			},
			drop:       dropConns,
			handshakes: 2,
			check:      wantClose(protocol.CloseUnauthorized),
		},
		{
			name: "401_and_Token_keeps_returning_an_expired_token",
			client: func(t *testing.T, o *client.Options) {
				expired := expiredToken(t, "alice")
				o.Token = goodThen(token(t, "alice", time.Hour), func(int) string { return expired })
			},
			drop:       dropConns,
			handshakes: 1,
			check:      wantHandshake(http.StatusUnauthorized, "UNAUTHORIZED"),
		},
		{
			name: "403_when_the_origin_is_no_longer_allowed",
			drop: func(t *testing.T, s *server, _ *client.Client) {
				s.setHandler(newHub(t, func(o *hub.Options) { o.CheckOrigin = func(*http.Request) bool { return false } }))
				s.dropConns()
			},
			handshakes: 1,
			check:      wantHandshake(http.StatusForbidden, "FORBIDDEN"),
		},
		{
			name:    "1009_after_sending_an_oversized_message",
			hubOpts: func(o *hub.Options) { o.MaxMessageBytes = 1024 },
			drop: func(t *testing.T, _ *server, c *client.Client) {
				if err := c.Emit(context.Background(), "echo", Text{strings.Repeat("x", 2048)}); err != nil {
					t.Fatal(err)
				}
			},
			check: wantClose(protocol.CloseMessageTooBig),
		},
		{
			name:   "MaxAttempts_failed_attempts_in_a_row",
			client: func(t *testing.T, o *client.Options) { o.MaxAttempts = 3 },
			drop:   func(t *testing.T, s *server, _ *client.Client) { s.kill() },
			check: func(t *testing.T, cause error) {
				if !errors.Is(cause, client.ErrMaxAttempts) {
					t.Fatalf("cause = %v, want ErrMaxAttempts", cause)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, func(o *hub.Options) {
				o.FirstMessageAuth = tc.firstAuth
				if tc.hubOpts != nil {
					tc.hubOpts(o)
				}
			})
			s := startServer(t, h)
			rec := newRecorder()
			opts := s.options(t, "alice")
			opts.Backoff = client.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
			if tc.client != nil {
				tc.client(t, &opts)
			}
			rec.attach(&opts)
			c := dial(t, opts)
			s.recordArrivals()
			tc.drop(t, s, c)

			st := rec.waitPhase(t, client.Closed, 1)
			tc.check(t, st.Err)
			if st.Code != closeCodeOf(st.Err) {
				t.Fatalf("State.Code = %v, want %v", st.Code, closeCodeOf(st.Err))
			}
			if phases := rec.phases(); tc.final && slices.Contains(phases, client.Reconnecting) {
				t.Fatalf("phases %v: a final cause must not report Reconnecting", phases)
			}
			if n := len(s.arrivals()); n != tc.handshakes {
				t.Fatalf("%d handshakes after the drop, want %d", n, tc.handshakes)
			}
			select {
			case <-c.Done():
			case <-time.After(15 * time.Second):
				t.Fatal("Done not closed")
			}
			if err := c.Err(); !errors.Is(err, client.ErrClosed) || !errors.Is(err, st.Err) {
				t.Fatalf("Err() = %v, want ErrClosed wrapping %v", err, st.Err)
			}
			if err := c.Join(context.Background(), "chat:1"); !errors.Is(err, client.ErrClosed) {
				t.Fatalf("Join after stopping: %v, want ErrClosed", err)
			}
		})
	}
}

// goodThen is a Token func that returns good once, then next(n) for the
// n-th later call.
func goodThen(good string, next func(n int) string) func(context.Context) (string, error) {
	var calls atomic.Int32
	return func(context.Context) (string, error) {
		n := int(calls.Add(1))
		if n == 1 {
			return good, nil
		}
		return next(n - 1), nil
	}
}

func dropConns(_ *testing.T, s *server, _ *client.Client) { s.dropConns() }

// logout disconnects alice server-side, as a service does at logout.
func logout(t *testing.T, s *server, _ *client.Client) {
	s.mu.Lock()
	h := s.handler.(*hub.Hub)
	s.mu.Unlock()
	if err := h.DisconnectUser(context.Background(), "alice", "logout"); err != nil {
		t.Fatal(err)
	}
}

func closeCodeOf(err error) protocol.CloseCode {
	if s := websocket.CloseStatus(err); s > 0 {
		return protocol.CloseCode(s)
	}
	return 0
}

func wantClose(code protocol.CloseCode) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if got := closeCodeOf(err); got != code {
			t.Fatalf("cause = %v (close status %d), want %d", err, got, code)
		}
	}
}

// TestIdleCloseReconnectsWhenNeeded: after the server's idle timeout (4002)
// the client stays away until the application calls.
func TestIdleCloseReconnectsWhenNeeded(t *testing.T) {
	h := newHub(t, func(o *hub.Options) { o.IdleTimeout = 300 * time.Millisecond })
	s := startServer(t, h)
	rec := newRecorder()
	opts := s.options(t, "alice")
	rec.attach(&opts)
	c := dial(t, opts)

	st := rec.waitPhase(t, client.Idle, 1)
	if st.Code != protocol.CloseIdle {
		t.Fatalf("Idle = %+v, want code 4002", st)
	}
	if c.ConnID() != "" {
		t.Fatal("client still has a connection while idle")
	}
	eventually(t, "the hub to let go of the idle connection", func() bool { return h.Connections() == 0 })
	got, err := client.Call[Text](context.Background(), c, "echo", Text{"wake up"})
	if err != nil || got.Text != "wake up" {
		t.Fatalf("Call while idle = %+v, %v", got, err)
	}
	rec.waitPhase(t, client.Connected, 2)
}

// TestSlowConsumerIsDroppedAndReconnects: an OnEvent that stops consuming
// fills the bounded event queue; the client drops that connection (the
// reader never blocks) and comes back once the application catches up.
func TestSlowConsumerIsDroppedAndReconnects(t *testing.T) {
	h := newHub(t, nil)
	s := startServer(t, h)
	rec := newRecorder()
	opts := s.options(t, "alice")
	opts.Backoff = fastBackoff
	opts.EventQueue = 4
	rec.attach(&opts)
	release := make(chan struct{})
	onEvent := opts.OnEvent
	opts.OnEvent = func(ev client.Event) {
		<-release
		onEvent(ev)
	}
	c := dial(t, opts)
	first := c.ConnID()
	ctx := context.Background()
	for i := range 20 {
		if err := h.ToUser(ctx, "alice", "tick", i); err != nil {
			t.Fatal(err)
		}
	}
	// OnState is stuck behind the blocked OnEvent like every callback, so
	// watch the connection id: "" while reconnecting, then a new one.
	eventually(t, "the slow connection to be dropped", func() bool { return c.ConnID() != first })
	close(release)
	st := rec.waitPhase(t, client.Reconnecting, 1)
	if !errors.Is(st.Err, client.ErrSlowConsumer) {
		t.Fatalf("Reconnecting = %+v, want ErrSlowConsumer", st)
	}
	rec.waitPhase(t, client.Connected, 2)
}

// TestCloseFromACallbackReturns: Close called on the callback goroutine
// while the client is reconnecting does not deadlock.
func TestCloseFromACallbackReturns(t *testing.T) {
	h := newHub(t, nil)
	s := startServer(t, h)
	opts := s.options(t, "alice")
	opts.Backoff = client.Backoff{Min: time.Minute, Max: time.Minute}
	var self atomic.Pointer[client.Client]
	closed := make(chan error, 1)
	opts.OnState = func(st client.State) {
		if st.Phase == client.Reconnecting {
			closed <- self.Load().Close()
		}
	}
	c := dial(t, opts)
	self.Store(c)
	s.kill()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close from OnState did not return")
	}
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("Done not closed")
	}
	if !errors.Is(c.Err(), client.ErrClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
}
