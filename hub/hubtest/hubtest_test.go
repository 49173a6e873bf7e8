package hubtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/hub/hubtest"
	"github.com/wsgate/wsgate/room"
)

// The service under test: a team chat whose "team:{id}" rooms only the
// team's members (the identity's tenant) may join.
type (
	say struct {
		Room string `json:"room" validate:"required"`
		Text string `json:"text" validate:"required,max=20" sanitize:"html"`
	}
	said struct {
		From string `json:"from"`
		Text string `json:"text"`
	}
	fail struct {
		Plain bool `json:"plain"`
		Panic bool `json:"panic"`
	}
)

// service is a hub with the team chat's handlers; ran counts the handler
// calls that got past the hub's checks.
type service struct {
	h   *hub.Hub
	ran atomic.Int32
}

func newService(t *testing.T, mutate func(*hub.Options)) *service {
	t.Helper()
	policy, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{
		"team": func(_ context.Context, id auth.Identity, r room.Name) (bool, error) {
			return r.Arg == id.TenantID, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	opts := hub.Options{
		// Only the handshake would ask it: hubtest connections come with
		// their identity.
		Authenticator: auth.AuthenticatorFunc(func(context.Context, string) (auth.Identity, error) {
			return auth.Identity{}, auth.ErrInvalidToken
		}),
		Rooms: policy,
	}
	if mutate != nil {
		mutate(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	s := &service{h: h}
	s.register()
	return s
}

func (s *service) register() {
	hub.Handle(s.h, "say", func(ctx hub.Context, in say) (said, error) {
		s.ran.Add(1)
		out := said{From: ctx.Identity().UserID, Text: in.Text}
		return out, ctx.Broadcast(in.Room, "said", out)
	})
	hub.Handle(s.h, "whisper", func(ctx hub.Context, in say) (struct{}, error) {
		s.ran.Add(1)
		return struct{}{}, ctx.Broadcast(in.Room, "whispered", said{From: ctx.Identity().UserID, Text: in.Text}, hub.Except(ctx.ConnID()))
	})
	hub.Handle(s.h, "ping", func(ctx hub.Context, in struct{}) (struct{}, error) {
		s.ran.Add(1)
		return struct{}{}, ctx.Emit("pong", map[string]string{"to": ctx.Identity().UserID})
	})
	hub.Handle(s.h, "fail", func(ctx hub.Context, in fail) (struct{}, error) {
		s.ran.Add(1)
		switch {
		case in.Panic:
			panic("handler bug")
		case in.Plain:
			return struct{}{}, errors.New("database password rejected")
		}
		return struct{}{}, hub.Errorf(hub.CodeForbidden, "not your team")
	})
	hub.Handle(s.h, "slow", func(ctx hub.Context, in struct{}) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
}

func TestCallReturnsTheHandlersAck(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	var got said
	if err := alice.Call("say", say{Room: "team:acme", Text: "hi"}, &got); err != nil {
		t.Fatal(err)
	}
	if want := (said{From: "alice", Text: "hi"}); got != want {
		t.Fatalf("ack %+v, want %+v", got, want)
	}
	if err := alice.Call("say", say{Room: "team:acme", Text: "again"}, nil); err != nil {
		t.Fatalf("a call that ignores the data: %v", err)
	}
}

func TestInvalidInputIsRefusedBeforeTheHandler(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	room := hubtest.Listen(t, s.h, "team:acme")
	tests := []struct {
		name string
		in   any
	}{
		{"missing_field", say{Room: "team:acme"}},
		{"too_long", say{Room: "team:acme", Text: "twenty-one characters"}},
		{"unknown_field", json.RawMessage(`{"room":"team:acme","text":"hi","admin":true}`)},
		{"wrong_type", json.RawMessage(`{"room":"team:acme","text":42}`)},
		{"no_data", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := alice.Call("say", tt.in, nil); hubtest.Code(err) != hub.CodeInvalidMessage {
				t.Fatalf("got %v, want INVALID_MESSAGE", err)
			}
		})
	}
	if n := s.ran.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
	if evs := room.Events(); len(evs) != 0 {
		t.Fatalf("the room received %+v", evs)
	}
}

func TestSanitizedInputReachesTheHandler(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	var got said
	if err := alice.Call("say", say{Room: "team:acme", Text: "<b>hi</b><img src=x>"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Text != "hi" {
		t.Fatalf("the handler got %q, want the markup removed", got.Text)
	}
}

func TestHandlerErrorsReachTheCallerAsTheClientSeesThem(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	tests := []struct {
		name      string
		in        fail
		code, msg string
	}{
		{"hub_error_keeps_its_code_and_message", fail{}, hub.CodeForbidden, "not your team"},
		{"plain_error_is_internal_and_generic", fail{Plain: true}, hub.CodeInternal, "internal error"},
		{"panic_is_internal", fail{Panic: true}, hub.CodeInternal, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := alice.Call("fail", tt.in, nil)
			var he *hubtest.Error
			if !errors.As(err, &he) || he.Code != tt.code || he.Message != tt.msg {
				t.Fatalf("got %v, want %s %q", err, tt.code, tt.msg)
			}
		})
	}
	if err := alice.Call("nope", nil, nil); hubtest.Code(err) != hub.CodeUnknownEvent {
		t.Fatalf("unregistered event: %v, want UNKNOWN_EVENT", err)
	}
}

func TestHandlerDeadlineAnswersTimeout(t *testing.T) {
	s := newService(t, func(o *hub.Options) { o.HandlerTimeout = 50 * time.Millisecond })
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	if err := alice.Call("slow", nil, nil); hubtest.Code(err) != hub.CodeTimeout {
		t.Fatalf("got %v, want TIMEOUT", err)
	}
}

func TestJoinGoesThroughTheRoomPolicy(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	tests := []struct {
		name, room, code string
	}{
		{"own_team_is_allowed", "team:acme", ""},
		{"other_team_is_forbidden", "team:globex", hub.CodeForbidden},
		{"another_users_room_is_forbidden", "user:bob", hub.CodeForbidden},
		{"unconfigured_kind_is_denied", "case:1", hub.CodeForbidden},
		{"malformed_name_is_invalid", "team:a b", hub.CodeInvalidMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := alice.Join(tt.room); hubtest.Code(err) != tt.code || (tt.code == "" && err != nil) {
				t.Fatalf("join %s: %v, want %q", tt.room, err, tt.code)
			}
		})
	}
	if err := alice.Leave("user:alice"); hubtest.Code(err) != hub.CodeForbidden {
		t.Fatalf("leaving an automatic room: %v, want FORBIDDEN", err)
	}
	if err := alice.Leave("team:acme"); err != nil {
		t.Fatalf("leave: %v", err)
	}
}

func TestBroadcastReachesListenersAndMembers(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	bob := hubtest.Connect(t, s.h, auth.Identity{UserID: "bob", TenantID: "acme"})
	carol := hubtest.Connect(t, s.h, auth.Identity{UserID: "carol", TenantID: "globex"})
	listener := hubtest.Listen(t, s.h, "team:acme")
	for _, c := range []*hubtest.Conn{alice, bob} {
		if err := c.Join("team:acme"); err != nil {
			t.Fatal(err)
		}
	}
	if err := carol.Join("team:acme"); hubtest.Code(err) != hub.CodeForbidden {
		t.Fatalf("carol's join: %v", err)
	}
	if err := alice.Call("say", say{Room: "team:acme", Text: "hi"}, nil); err != nil {
		t.Fatal(err)
	}
	want := said{From: "alice", Text: "hi"}
	for name, next := range map[string]func(context.Context) (hubtest.Event, error){
		"listener": listener.Next, "bob": bob.Next, "alice, the sender": alice.Next,
	} {
		ev, err := next(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got said
		if err := ev.Decode(&got); err != nil || ev.Name != "said" || ev.Room != "team:acme" || got != want {
			t.Errorf("%s got %+v (%v), want said %+v in team:acme", name, ev, err, want)
		}
	}
	if evs := carol.Events(); len(evs) != 0 {
		t.Errorf("carol, refused, received %+v", evs)
	}
	// A listener records its room only: not another room, not what every
	// connection gets.
	if err := carol.Call("say", say{Room: "team:globex", Text: "hi"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.h.ToAll(t.Context(), "maintenance", nil); err != nil {
		t.Fatal(err)
	}
	if evs := listener.Events(); len(evs) != 1 {
		t.Errorf("the listener recorded %+v, want the one broadcast to its room", evs)
	}
}

func TestExceptLeavesTheSenderOut(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	aliceTab2 := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	listener := hubtest.Listen(t, s.h, "team:acme")
	for _, c := range []*hubtest.Conn{alice, aliceTab2} {
		if err := c.Join("team:acme"); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.Call("whisper", say{Room: "team:acme", Text: "psst"}, nil); err != nil {
		t.Fatal(err)
	}
	for name, events := range map[string][]hubtest.Event{"listener": listener.Events(), "alice's other tab": aliceTab2.Events()} {
		if len(events) != 1 || events[0].Name != "whispered" {
			t.Errorf("%s received %+v, want the whisper", name, events)
		}
	}
	// The in-memory broker delivered before the call returned: nothing
	// more is coming.
	if evs := alice.Events(); len(evs) != 0 {
		t.Errorf("the sender received %+v", evs)
	}
}

func TestToUserReachesEveryConnectionOfTheUser(t *testing.T) {
	s := newService(t, nil)
	phone := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	laptop := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	bob := hubtest.Connect(t, s.h, auth.Identity{UserID: "bob"})
	if err := s.h.ToUser(t.Context(), "alice", "notice", map[string]int{"unread": 3}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*hubtest.Conn{"phone": phone, "laptop": laptop} {
		ev, err := c.Next(t.Context())
		if err != nil || ev.Name != "notice" || ev.Room != "" || string(ev.Data) != `{"unread":3}` {
			t.Errorf("%s got %+v, %v", name, ev, err)
		}
	}
	if evs := bob.Events(); len(evs) != 0 {
		t.Errorf("bob received %+v", evs)
	}
}

func TestEmitReachesOnlyTheCaller(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	bob := hubtest.Connect(t, s.h, auth.Identity{UserID: "bob"})
	if err := alice.Emit("ping", nil); err != nil {
		t.Fatalf("emit: %v", err)
	}
	ev, err := alice.Next(t.Context())
	if err != nil || ev.Name != "pong" || string(ev.Data) != `{"to":"alice"}` {
		t.Fatalf("got %+v, %v", ev, err)
	}
	if evs := bob.Events(); len(evs) != 0 {
		t.Errorf("bob received %+v", evs)
	}
}

func TestEmitReportsTheErrorTheHubSends(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	if err := alice.Emit("say", say{}); hubtest.Code(err) != hub.CodeInvalidMessage {
		t.Fatalf("invalid emit: %v, want INVALID_MESSAGE", err)
	}
	if err := alice.Emit("fail", fail{}); hubtest.Code(err) != hub.CodeForbidden {
		t.Fatalf("failing handler: %v, want FORBIDDEN", err)
	}
}

func TestMiddlewareAndHooksRun(t *testing.T) {
	type seenKey struct{}
	var mu sync.Mutex
	var log []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, s)
	}
	s := newService(t, func(o *hub.Options) {
		o.OnConnect = func(info hub.ConnInfo) { note("connect " + info.Identity.UserID) }
		o.OnDisconnect = func(info hub.ConnInfo, reason string) {
			seen, _ := info.State(seenKey{}).(string)
			note("disconnect " + info.Identity.UserID + " " + reason + " after " + seen)
		}
	})
	s.h.Use(func(next hub.HandlerFunc) hub.HandlerFunc {
		return func(ctx hub.Context, in any) (any, error) {
			note("before " + ctx.Event())
			ctx.SetState(seenKey{}, ctx.Event())
			return next(ctx, in)
		}
	})
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	if err := alice.Emit("ping", nil); err != nil {
		t.Fatal(err)
	}
	alice.Close()
	want := []string{"connect alice", "before ping", "disconnect alice client_closed after ping"}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != len(want) {
		t.Fatalf("hooks and middleware ran as %q, want %q", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("hooks and middleware ran as %q, want %q", log, want)
		}
	}
}

func TestRateLimitsApply(t *testing.T) {
	s := newService(t, nil)
	hub.Handle(s.h, "vote", func(hub.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
		hub.WithRateLimit(hub.Limit{Rate: hub.Every(time.Hour), Burst: 2}))
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	for i := range 2 {
		if err := alice.Call("vote", nil, nil); err != nil {
			t.Fatalf("vote %d: %v", i+1, err)
		}
	}
	if err := alice.Call("vote", nil, nil); hubtest.Code(err) != hub.CodeRateLimited {
		t.Fatalf("third vote: %v, want RATE_LIMITED", err)
	}
	if err := alice.Emit("vote", nil); hubtest.Code(err) != hub.CodeRateLimited {
		t.Fatalf("emitted vote: %v, want RATE_LIMITED", err)
	}
	// The limit is per event: others are still served.
	if err := alice.Emit("ping", nil); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func TestConnectionWideRateLimitApplies(t *testing.T) {
	s := newService(t, func(o *hub.Options) { o.MessageRate = hub.Limit{Rate: hub.Every(time.Hour), Burst: 3} })
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	for i := range 3 {
		if err := alice.Emit("ping", nil); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	if err := alice.Join("user:alice"); hubtest.Code(err) != hub.CodeRateLimited {
		t.Fatalf("fourth message: %v, want RATE_LIMITED", err)
	}
}
