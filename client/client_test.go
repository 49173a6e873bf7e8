package client_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/room"
)

func TestDial(t *testing.T) {
	cases := []struct {
		name      string
		via       client.TokenTransport
		firstAuth bool // hub.Options.FirstMessageAuth
	}{
		{"token_in_header_gets_a_welcome", client.TokenHeader, false},
		{"token_in_subprotocol_gets_a_welcome", client.TokenSubprotocol, false},
		{"token_in_first_message_gets_a_welcome", client.TokenFirstMessage, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, func(o *hub.Options) { o.FirstMessageAuth = tc.firstAuth })
			s := startServer(t, h)
			rec := newRecorder()
			opts := s.options(t, "alice")
			opts.TokenVia = tc.via
			rec.attach(&opts)
			c := dial(t, opts)
			if c.ConnID() == "" {
				t.Fatal("ConnID is empty after Dial")
			}
			st := rec.waitPhase(t, client.Connected, 1)
			if st.ConnID != c.ConnID() || st.Err != nil {
				t.Fatalf("Connected state = %+v, want ConnID %q and no error", st, c.ConnID())
			}
			if got := rec.phases(); got[0] != client.Connecting {
				t.Fatalf("first state = %v, want connecting", got[0])
			}
			if h.Connections() != 1 {
				t.Fatalf("hub has %d connections, want 1", h.Connections())
			}
		})
	}
}

func TestDialRefusals(t *testing.T) {
	cases := []struct {
		name      string
		firstAuth bool
		adjust    func(*client.Options)
		check     func(t *testing.T, err error)
	}{
		{
			name:   "invalid_token_is_a_401_HandshakeError",
			adjust: func(o *client.Options) { o.Token = staticToken("not-a-jwt") },
			check:  wantHandshake(http.StatusUnauthorized, "UNAUTHORIZED"),
		},
		{
			name:   "expired_token_is_a_401_HandshakeError",
			adjust: func(o *client.Options) { o.Token = staticToken(expiredToken(t, "alice")) },
			check:  wantHandshake(http.StatusUnauthorized, "UNAUTHORIZED"),
		},
		{
			name:   "missing_origin_is_a_403_HandshakeError",
			adjust: func(o *client.Options) { o.Origin = "" },
			check:  wantHandshake(http.StatusForbidden, "FORBIDDEN"),
		},
		{
			name:   "foreign_origin_is_a_403_HandshakeError",
			adjust: func(o *client.Options) { o.Origin = "https://evil.example" },
			check:  wantHandshake(http.StatusForbidden, "FORBIDDEN"),
		},
		{
			name:      "first_message_with_invalid_token_is_closed_4001",
			firstAuth: true,
			adjust: func(o *client.Options) {
				o.TokenVia = client.TokenFirstMessage
				o.Token = staticToken("not-a-jwt")
			},
			check: func(t *testing.T, err error) {
				if got := websocket.CloseStatus(err); got != websocket.StatusCode(protocol.CloseUnauthorized) {
					t.Fatalf("close status = %d (%v), want 4001", got, err)
				}
				var se *client.ServerError
				if !errors.As(err, &se) || se.Code != protocol.CodeUnauthorized {
					t.Fatalf("err = %v, want it to carry the UNAUTHORIZED error frame", err)
				}
			},
		},
		{
			name:   "token_func_error_is_returned",
			adjust: func(o *client.Options) { o.Token = func(context.Context) (string, error) { return "", errBoom } },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, errBoom) {
					t.Fatalf("err = %v, want errBoom", err)
				}
			},
		},
		{
			name:   "missing_token_func_is_an_options_error",
			adjust: func(o *client.Options) { o.Token = nil },
			check:  wantErr,
		},
		{
			name:   "non_websocket_url_is_an_options_error",
			adjust: func(o *client.Options) { o.URL = "ftp://127.0.0.1/ws" },
			check:  wantErr,
		},
		{
			name:   "max_backoff_below_min_is_an_options_error",
			adjust: func(o *client.Options) { o.Backoff = client.Backoff{Min: time.Second, Max: time.Millisecond} },
			check:  wantErr,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, func(o *hub.Options) { o.FirstMessageAuth = tc.firstAuth })
			s := startServer(t, h)
			opts := s.options(t, "alice")
			tc.adjust(&opts)
			rec := newRecorder()
			rec.attach(&opts)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, opts)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			tc.check(t, err)
			eventually(t, "the hub to drop the refused connection", func() bool { return h.Connections() == 0 })
		})
	}
}

var errBoom = errors.New("token service down")

func staticToken(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}

func wantHandshake(status int, code string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var he *client.HandshakeError
		if !errors.As(err, &he) || he.Status != status || he.Code != code {
			t.Fatalf("err = %#v, want HandshakeError %d %s", err, status, code)
		}
	}
}

func wantErr(t *testing.T, err error) {
	if err == nil {
		t.Fatal("no error")
	}
}

func TestCall(t *testing.T) {
	h := newHub(t, nil)
	s := startServer(t, h)
	c := dial(t, s.options(t, "alice"))
	cases := []struct {
		name  string
		event string
		data  any
		want  Text
		check func(t *testing.T, err error)
	}{
		{name: "ack_carries_the_typed_result", event: "echo", data: Text{"hi"}, want: Text{"hi"}},
		{name: "handler_refusal_is_a_ServerError", event: "fail", data: Text{"x"}, check: wantServer(protocol.CodeForbidden)},
		{name: "unknown_event_is_a_ServerError", event: "nope", data: Text{"x"}, check: wantServer(protocol.CodeUnknownEvent)},
		{name: "data_failing_validation_is_INVALID_MESSAGE", event: "echo", data: Text{""}, check: wantServer(protocol.CodeInvalidMessage)},
		{name: "unknown_field_is_INVALID_MESSAGE", event: "echo", data: map[string]any{"text": "a", "x": 1}, check: wantServer(protocol.CodeInvalidMessage)},
		{name: "invalid_event_name_is_refused_before_sending", event: "a b", check: wantErr},
		{name: "unencodable_data_is_refused_before_sending", event: "echo", data: make(chan int), check: wantErr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := client.Call[Text](ctx, c, tc.event, tc.data)
			if tc.check != nil {
				tc.check(t, err)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Call = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func wantServer(code string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != code {
			t.Fatalf("err = %v, want ServerError %s", err, code)
		}
	}
}

func TestCallTimeouts(t *testing.T) {
	cases := []struct {
		name           string
		handlerTimeout time.Duration // the hub's
		ackTimeout     time.Duration // the client's
		serverSide     bool          // the answer is a TIMEOUT error frame
	}{
		{"no_ack_within_AckTimeout_is_ErrTimeout", time.Second, 200 * time.Millisecond, false},
		{"server_handler_deadline_is_a_TIMEOUT_ServerError", 100 * time.Millisecond, 10 * time.Second, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, func(o *hub.Options) { o.HandlerTimeout = tc.handlerTimeout })
			s := startServer(t, h)
			opts := s.options(t, "alice")
			opts.AckTimeout = tc.ackTimeout
			c := dial(t, opts)
			_, err := client.Call[struct{}](context.Background(), c, "slow", Text{"x"})
			if !errors.Is(err, client.ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
			var se *client.ServerError
			if errors.As(err, &se) != tc.serverSide {
				t.Fatalf("err = %v; server-side = %v, want %v", err, !tc.serverSide, tc.serverSide)
			}
			if !tc.serverSide {
				// The hub answers a connection's messages in order, so the
				// next call would wait behind "slow"; the local timeout
				// must not have cost the connection though.
				if c.ConnID() == "" || h.Connections() != 1 {
					t.Fatal("a local ack timeout dropped the connection")
				}
				return
			}
			if got, err := client.Call[Text](context.Background(), c, "echo", Text{"after"}); err != nil || got.Text != "after" {
				t.Fatalf("echo after a timeout = %+v, %v", got, err)
			}
		})
	}
}

func TestCallerContextEndsTheWait(t *testing.T) {
	h := newHub(t, func(o *hub.Options) { o.HandlerTimeout = time.Second })
	s := startServer(t, h)
	c := dial(t, s.options(t, "alice"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := client.Call[struct{}](ctx, c, "slow", Text{"x"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrTimeout) {
		t.Fatalf("err = %v, want the caller's DeadlineExceeded", err)
	}
}

func TestJoinAndLeave(t *testing.T) {
	h := newHub(t, nil)
	s := startServer(t, h)
	rec := newRecorder()
	opts := s.options(t, "alice")
	rec.attach(&opts)
	c := dial(t, opts)
	ctx := context.Background()

	cases := []struct {
		name  string
		do    func() error
		check func(t *testing.T, err error)
	}{
		{"join_allowed_room_is_acked", func() error { return c.Join(ctx, "chat:1") }, nil},
		{"join_again_is_idempotent", func() error { return c.Join(ctx, "chat:1") }, nil},
		{"join_denied_kind_is_FORBIDDEN", func() error { return c.Join(ctx, "secret:1") }, wantServer(protocol.CodeForbidden)},
		{"join_other_users_room_is_FORBIDDEN", func() error { return c.Join(ctx, "user:bob") }, wantServer(protocol.CodeForbidden)},
		{"join_invalid_name_is_refused_before_sending", func() error { return c.Join(ctx, "Bad Room") }, wantErr},
		{"leave_is_acked", func() error { return c.Join(ctx, "chat:2") }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if tc.check != nil {
				tc.check(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("events_arrive_through_joined_rooms_only", func(t *testing.T) {
		if err := c.Leave(ctx, "chat:2"); err != nil {
			t.Fatal(err)
		}
		// Broadcast to the left room first, then to the joined one: with
		// in-order delivery, receiving the second proves the first was not
		// delivered.
		for _, r := range []string{"chat:2", "chat:1"} {
			if err := h.Broadcast(ctx, r, "news", Text{r}); err != nil {
				t.Fatal(err)
			}
		}
		ev := rec.waitEvent(t, "news")
		var got Text
		if err := ev.Decode(&got); err != nil || ev.Room != "chat:1" || got.Text != "chat:1" {
			t.Fatalf("first news event = %+v (%v), want the chat:1 one", ev, err)
		}
	})
}

func TestEventsAndErrorsReachTheCallbacks(t *testing.T) {
	h := newHub(t, nil)
	s := startServer(t, h)
	rec := newRecorder()
	opts := s.options(t, "alice")
	rec.attach(&opts)
	c := dial(t, opts)
	ctx := context.Background()

	if err := h.ToUser(ctx, "alice", "notice", Text{"to alice"}); err != nil {
		t.Fatal(err)
	}
	ev := rec.waitEvent(t, "notice")
	var got Text
	if err := ev.Decode(&got); err != nil || got.Text != "to alice" {
		t.Fatalf("notice = %+v (%v)", ev, err)
	}

	// An Emit gets no ack; its refusal arrives as an error without an id.
	if err := c.Emit(ctx, "echo", Text{""}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "OnError", func() bool { return len(rec.errs) == 1 })
	if errs := rec.serverErrors(); errs[0].Code != protocol.CodeInvalidMessage {
		t.Fatalf("OnError got %v, want INVALID_MESSAGE", errs[0])
	}

	// A callback that calls back into the client does not deadlock: acks are
	// read by the reader, not by the callback goroutine.
	answered := make(chan error, 1)
	var self atomic.Pointer[client.Client]
	opts2 := s.options(t, "bob")
	opts2.OnEvent = func(ev client.Event) {
		_, err := client.Call[Text](ctx, self.Load(), "echo", Text{"from callback"})
		answered <- err
	}
	self.Store(dial(t, opts2))
	if err := h.ToUser(ctx, "bob", "ping", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("Call from OnEvent: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Call from OnEvent did not return")
	}
}

func TestRefresh(t *testing.T) {
	h := newHub(t, nil)
	s := startServer(t, h)
	c := dial(t, s.options(t, "alice"))
	id := c.ConnID()
	cases := []struct {
		name  string
		token string
		check func(t *testing.T, err error)
	}{
		{"fresh_token_of_the_same_user_is_acked", token(t, "alice", 2*time.Hour), nil},
		{"token_of_another_user_is_UNAUTHORIZED", token(t, "mallory", time.Hour), wantServer(protocol.CodeUnauthorized)},
		{"expired_token_is_TOKEN_EXPIRED", expiredToken(t, "alice"), wantServer(protocol.CodeTokenExpired)},
		{"garbage_is_UNAUTHORIZED", "not-a-jwt", wantServer(protocol.CodeUnauthorized)},
		{"empty_token_is_refused_before_sending", "", wantErr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Refresh(context.Background(), tc.token)
			if tc.check != nil {
				tc.check(t, err)
			} else if err != nil {
				t.Fatal(err)
			}
			if c.ConnID() != id {
				t.Fatalf("connection changed: %q → %q", id, c.ConnID())
			}
		})
	}
}

// TestRefreshKeepsTheConnectionPastTheFirstTokensExpiry runs two clients
// whose first tokens expire together: the one that refreshed in-band keeps
// its connection; the other is closed with 4003 and reconnects with the
// fresh token its Token func now returns.
func TestRefreshKeepsTheConnectionPastTheFirstTokensExpiry(t *testing.T) {
	h := newHub(t, nil)
	s := startServer(t, h)
	// JWT expiry has one-second resolution: three seconds leave two for the
	// dials and the refresh on a loaded machine.
	short := token(t, "alice", 3*time.Second)
	long := token(t, "alice", time.Hour)

	refreshed := newRecorder()
	opts := s.options(t, "alice")
	opts.Token = staticToken(short)
	refreshed.attach(&opts)
	a := dial(t, opts)

	expired := newRecorder()
	var calls atomic.Int32
	opts = s.options(t, "alice")
	opts.Token = func(context.Context) (string, error) {
		if calls.Add(1) == 1 {
			return short, nil
		}
		return long, nil
	}
	expired.attach(&opts)
	b := dial(t, opts)

	if err := a.Refresh(context.Background(), long); err != nil {
		t.Fatal(err)
	}
	id := a.ConnID()

	st := expired.waitPhase(t, client.Reconnecting, 1)
	if st.Code != protocol.CloseTokenExpired {
		t.Fatalf("unrefreshed client: %+v, want close code 4003", st)
	}
	expired.waitPhase(t, client.Connected, 2)
	if _, err := client.Call[Text](context.Background(), b, "echo", Text{"back"}); err != nil {
		t.Fatalf("unrefreshed client after reconnecting: %v", err)
	}
	if _, err := client.Call[Text](context.Background(), a, "echo", Text{"still here"}); err != nil {
		t.Fatal(err)
	}
	if a.ConnID() != id || len(refreshed.phases()) != 2 {
		t.Fatalf("refreshed client changed connection: states %v", refreshed.phases())
	}
}

// A room rule that cannot decide (its database is down) is not a denial:
// the client hears INTERNAL, not FORBIDDEN, and a denial stays FORBIDDEN.
func TestJoinRuleFailureIsInternalNotForbidden(t *testing.T) {
	h := newHub(t, func(o *hub.Options) {
		p, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{
			"project": func(_ context.Context, _ auth.Identity, r room.Name) (bool, error) {
				if r.Arg == "down" {
					return false, errors.New("members database unreachable")
				}
				return r.Arg == "mine", nil
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		o.Rooms = p
	})
	s := startServer(t, h)
	c := dial(t, s.options(t, "alice"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Join(ctx, "project:mine"); err != nil {
		t.Fatalf("allowed join: %v", err)
	}
	wantServer(protocol.CodeForbidden)(t, c.Join(ctx, "project:theirs"))
	wantServer(protocol.CodeInternal)(t, c.Join(ctx, "project:down"))
}
