package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	wsproto "github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/room"
)

// pos is a position as the wire carries it.
type pos struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// joinReply is the data of a join's ack in a room with history.
type joinReply struct {
	Offset    *uint64 `json:"offset"`
	Epoch     string  `json:"epoch"`
	Recovered *bool   `json:"recovered"`
	Missed    *int    `json:"missed"`
}

func (r joinReply) top() pos {
	if r.Offset == nil {
		return pos{}
	}
	return pos{*r.Offset, r.Epoch}
}

// historyEnv starts a hub keeping history by policies, on a bus of its own
// that the test may close.
func historyEnv(t *testing.T, policies map[string]hub.HistoryPolicy, configure func(*hub.Options)) (*env, *memory.Bus) {
	t.Helper()
	bus := memory.NewBus()
	t.Cleanup(bus.Close)
	e := newEnv(t, func(o *hub.Options) {
		o.History = policies
		o.Broker = bus.Broker()
		if configure != nil {
			configure(o)
		}
	})
	return e, bus
}

// positions returns the welcome's positions.
func (c *client) positions() map[string]pos {
	c.t.Helper()
	var d struct {
		Positions map[string]pos `json:"positions"`
	}
	if err := json.Unmarshal(c.welcome.Data, &d); err != nil {
		c.t.Fatalf("welcome %s: %v", c.welcome.Data, err)
	}
	return d.Positions
}

// join sends a join with id and, when since is set, a position to recover
// from, and returns the ack's data or the error frame.
func (c *client) join(id uint64, name string, since *pos) (joinReply, *frame) {
	c.t.Helper()
	msg := map[string]any{"type": "join", "id": id, "room": name}
	if since != nil {
		msg["data"] = map[string]any{"since": since}
	}
	c.send(msg)
	for {
		f := c.next()
		if f.ID == nil || *f.ID != id {
			if f.Type == "event" && f.Room == name {
				c.t.Fatalf("event %+v of %s before the join's answer", f, name)
			}
			continue
		}
		if f.Type == "error" {
			return joinReply{}, &f
		}
		var r joinReply
		if len(f.Data) > 0 {
			if err := json.Unmarshal(f.Data, &r); err != nil {
				c.t.Fatalf("ack data %s: %v", f.Data, err)
			}
		}
		return r, nil
	}
}

// seq is what an event says of itself: its data (the publisher's counter)
// and its position.
type seq struct {
	n   int
	pos pos
}

// events reads n frames, which must be events of room, and returns them.
func (c *client) events(room string, n int) []seq {
	c.t.Helper()
	out := make([]seq, 0, n)
	for range n {
		f := c.next()
		if f.Type != "event" || f.Room != room || f.Offset == nil {
			c.t.Fatalf("got %+v, want an event of %s with a position", f, room)
		}
		var v int
		if err := json.Unmarshal(f.Data, &v); err != nil {
			c.t.Fatalf("event data %s: %v", f.Data, err)
		}
		out = append(out, seq{v, pos{*f.Offset, f.Epoch}})
	}
	return out
}

// expectEvents reads events of room and checks that their data are want,
// at offsets want[i] as well (the tests publish n as the nth message).
func (c *client) expectEvents(room, epoch string, want ...int) {
	c.t.Helper()
	for i, got := range c.events(room, len(want)) {
		if got.n != want[i] || got.pos != (pos{uint64(want[i]), epoch}) {
			c.t.Fatalf("event %d = %d at %+v, want %d at offset %d of %s", i, got.n, got.pos, want[i], want[i], epoch)
		}
	}
}

// toTenant publishes the numbers from..to to a tenant, in order.
func toTenant(t *testing.T, h *hub.Hub, tenant string, from, to int, opts ...hub.BroadcastOption) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := h.ToTenant(context.Background(), tenant, "n", i, opts...); err != nil {
			t.Fatal(err)
		}
	}
}

var tenantHistory = map[string]hub.HistoryPolicy{"tenant": {Size: 100, TTL: time.Minute}}

func TestHistoryPositionsOnTheWire(t *testing.T) {
	e, _ := historyEnv(t, tenantHistory, nil)
	ana := e.connect(claims{sub: "ana", tenant: "acme"})
	ps := ana.positions()
	top, ok := ps["tenant:acme"]
	if !ok || top.Offset != 0 || len(top.Epoch) == 0 || len(ps) != 1 {
		t.Fatalf("welcome positions = %+v, want tenant:acme at offset 0 only", ps)
	}
	toTenant(t, e.hub, "acme", 1, 2)
	ana.expectEvents("tenant:acme", top.Epoch, 1, 2)

	t.Run("rooms_without_history_carry_no_position", func(t *testing.T) {
		if _, ferr := ana.join(1, "user:ana", nil); ferr != nil {
			t.Fatal(ferr)
		}
		if err := e.hub.ToUser(context.Background(), "ana", "hi", 1); err != nil {
			t.Fatal(err)
		}
		f := ana.next()
		if f.Type != "event" || f.Room != "" || f.Offset != nil || f.Epoch != "" {
			t.Fatalf("ToUser without user history = %+v, want an event without room and position", f)
		}
	})
	t.Run("a_join_answers_the_top", func(t *testing.T) {
		r, ferr := ana.join(2, "tenant:acme", nil)
		if ferr != nil || r.top() != (pos{2, top.Epoch}) || r.Recovered != nil || r.Missed != nil {
			t.Fatalf("join = %+v, %+v; want the top {2 %s} without recovered", r, ferr, top.Epoch)
		}
	})
}

func TestHistoryRecovery(t *testing.T) {
	e, _ := historyEnv(t, tenantHistory, nil)
	first := e.connect(claims{sub: "ana", tenant: "acme"})
	epoch := first.positions()["tenant:acme"].Epoch
	toTenant(t, e.hub, "acme", 1, 3)
	first.expectEvents("tenant:acme", epoch, 1, 2, 3)
	first.ws.CloseNow()
	toTenant(t, e.hub, "acme", 4, 6)

	again := e.connect(claims{sub: "ana", tenant: "acme"})
	if p := again.positions()["tenant:acme"]; p != (pos{6, epoch}) {
		t.Fatalf("welcome position = %+v, want {6 %s}", p, epoch)
	}
	r, ferr := again.join(1, "tenant:acme", &pos{3, epoch})
	if ferr != nil || r.Recovered == nil || !*r.Recovered || *r.Missed != 3 || r.top() != (pos{6, epoch}) {
		t.Fatalf("recovery = %+v, %+v; want recovered, 3 missed, top 6", r, ferr)
	}
	again.expectEvents("tenant:acme", epoch, 4, 5, 6)
	toTenant(t, e.hub, "acme", 7, 7)
	again.expectEvents("tenant:acme", epoch, 7)

	t.Run("nothing_missed", func(t *testing.T) {
		r, ferr := again.join(2, "tenant:acme", &pos{7, epoch})
		if ferr != nil || !*r.Recovered || *r.Missed != 0 || r.top() != (pos{7, epoch}) {
			t.Fatalf("recovery = %+v, %+v; want recovered, 0 missed", r, ferr)
		}
		toTenant(t, e.hub, "acme", 8, 8)
		again.expectEvents("tenant:acme", epoch, 8)
	})
}

// TestHistoryRecoveryAllOrNothing: whatever the reason a recovery cannot
// return every missed message, it returns none, says so, and the live
// messages go on from the top it gave.
func TestHistoryRecoveryAllOrNothing(t *testing.T) {
	cases := []struct {
		name    string
		policy  hub.HistoryPolicy
		maxRec  int
		publish int
		since   func(epoch string) pos
		before  func(t *testing.T, bus *memory.Bus)
	}{
		{name: "epoch_mismatch", publish: 2, since: func(string) pos { return pos{1, "0123456789abcdef"} }},
		{name: "position_above_the_top", publish: 2, since: func(e string) pos { return pos{5, e} }},
		{name: "trimmed", policy: hub.HistoryPolicy{Size: 3}, publish: 6, since: func(e string) pos { return pos{1, e} }},
		{name: "over_the_recovery_limit", maxRec: 2, publish: 5, since: func(e string) pos { return pos{0, e} }},
		{name: "empty_epoch", publish: 1, since: func(string) pos { return pos{} }},
		{name: "expired", policy: hub.HistoryPolicy{Size: 10, TTL: 100 * time.Millisecond}, publish: 2,
			since: func(e string) pos { return pos{0, e} },
			before: func(t *testing.T, bus *memory.Bus) {
				b := bus.Broker()
				defer b.Close()
				eventually(t, "the entries to expire", func() bool {
					res, err := b.History(context.Background(), "room:tenant:acme", adapter.HistoryQuery{Since: adapter.Position{}})
					return err == nil && !res.Complete && res.Top.Offset == 2 && bus.Usage().Entries == 0
				})
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			policy := tc.policy
			if policy.Size == 0 {
				policy = hub.HistoryPolicy{Size: 100, TTL: time.Minute}
			}
			e, bus := historyEnv(t, map[string]hub.HistoryPolicy{"tenant": policy}, func(o *hub.Options) { o.MaxRecovery = tc.maxRec })
			ana := e.connect(claims{sub: "ana", tenant: "acme"})
			epoch := ana.positions()["tenant:acme"].Epoch
			bo := e.connect(claims{sub: "bo", tenant: "acme"})
			toTenant(t, e.hub, "acme", 1, tc.publish)
			want := make([]int, tc.publish)
			for i := range want {
				want[i] = i + 1
			}
			bo.expectEvents("tenant:acme", epoch, want...)
			if tc.before != nil {
				tc.before(t, bus)
			}
			r, ferr := bo.join(1, "tenant:acme", new(tc.since(epoch)))
			if ferr != nil || r.Recovered == nil || *r.Recovered || *r.Missed != 0 || r.top() != (pos{uint64(tc.publish), epoch}) {
				t.Fatalf("recovery = %+v, %+v; want not recovered, 0 missed, top %d", r, ferr, tc.publish)
			}
			toTenant(t, e.hub, "acme", tc.publish+1, tc.publish+1)
			bo.expectEvents("tenant:acme", epoch, tc.publish+1)
		})
	}
	t.Run("store_error", func(t *testing.T) {
		e, bus := historyEnv(t, tenantHistory, nil)
		ana := e.connect(claims{sub: "ana", tenant: "acme"})
		epoch := ana.positions()["tenant:acme"].Epoch
		toTenant(t, e.hub, "acme", 1, 2)
		ana.expectEvents("tenant:acme", epoch, 1, 2)
		bus.Close()
		r, ferr := ana.join(1, "tenant:acme", &pos{1, epoch})
		if ferr != nil || r.Recovered == nil || *r.Recovered || *r.Missed != 0 || r.Offset != nil {
			t.Fatalf("recovery = %+v, %+v; want not recovered, no top", r, ferr)
		}
	})
}

func TestHistoryReplayHonoursExcept(t *testing.T) {
	e, _ := historyEnv(t, tenantHistory, nil)
	ana := e.connect(claims{sub: "ana", tenant: "acme"})
	bo := e.connect(claims{sub: "bo", tenant: "acme"})
	epoch := ana.positions()["tenant:acme"].Epoch
	if err := e.hub.Broadcast(context.Background(), "tenant:acme", "n", 1, hub.Except(ana.connID())); err != nil {
		t.Fatal(err)
	}
	toTenant(t, e.hub, "acme", 2, 2)
	bo.expectEvents("tenant:acme", epoch, 1, 2)
	// The message left out is no gap: ana gets 2 and nothing else.
	ana.expectEvents("tenant:acme", epoch, 2)

	r, ferr := ana.join(1, "tenant:acme", &pos{0, epoch})
	if ferr != nil || !*r.Recovered || *r.Missed != 1 {
		t.Fatalf("recovery = %+v, %+v; want recovered with 1 missed (the excluded one left out)", r, ferr)
	}
	ana.expectEvents("tenant:acme", epoch, 2)
	r, ferr = bo.join(1, "tenant:acme", &pos{0, epoch})
	if ferr != nil || !*r.Recovered || *r.Missed != 2 {
		t.Fatalf("recovery of another connection = %+v, %+v; want both", r, ferr)
	}
	bo.expectEvents("tenant:acme", epoch, 1, 2)
}

// TestHistoryRecoveryReauthorizes: a recovery is a join, checked with the
// identity of the connection's current token.
func TestHistoryRecoveryReauthorizes(t *testing.T) {
	e, _ := historyEnv(t, tenantHistory, nil)
	ana := e.connect(claims{sub: "ana", tenant: "acme"})
	epoch := ana.positions()["tenant:acme"].Epoch
	toTenant(t, e.hub, "acme", 1, 2)
	ana.expectEvents("tenant:acme", epoch, 1, 2)

	ana.send(map[string]any{"type": "auth", "id": 1, "data": map[string]string{"token": token(t, claims{sub: "ana", tenant: "zeta"})}})
	if f := ana.next(); f.Type != "ack" {
		t.Fatalf("refresh answered %+v", f)
	}
	_, ferr := ana.join(2, "tenant:acme", &pos{0, epoch})
	if ferr == nil || ferr.Code != hub.CodeForbidden {
		t.Fatalf("recovery of the old tenant's room answered %+v, want FORBIDDEN", ferr)
	}
	r, ferr := ana.join(3, "tenant:zeta", &pos{0, "x"})
	if ferr != nil || r.Recovered == nil || *r.Recovered {
		t.Fatalf("recovery of the new tenant's room = %+v, %+v; want an answer (not recovered: another epoch)", r, ferr)
	}
}

func newAuthn(t *testing.T) auth.Authenticator {
	t.Helper()
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return authn
}

// A user room whose name is longer than a client may join (a long user
// id) is left out of the welcome's positions: the client could not use
// one, and would fail to recover it on every reconnect.
func TestNoPositionForARoomTheWireRefuses(t *testing.T) {
	e, _ := historyEnv(t, map[string]hub.HistoryPolicy{"user": {Size: 10}}, nil)
	id := strings.Repeat("u", 200)
	name := room.User(id)
	if !room.Valid(name) || wsproto.ValidRoom(name) {
		t.Fatalf("the test needs a room name the hub takes and the wire refuses: %d bytes", len(name))
	}
	u := e.connect(claims{sub: id})
	if _, ok := u.positions()[name]; ok {
		t.Fatalf("welcome positions = %+v, with %s, which no client can join", u.positions(), name)
	}
}

func TestHistoryOfUserRooms(t *testing.T) {
	policies := map[string]hub.HistoryPolicy{"user": {Size: 10}}
	e, _ := historyEnv(t, policies, nil)
	id := "auth0|507f"
	name := room.User(id)
	u := e.connect(claims{sub: id})
	top, ok := u.positions()[name]
	if !ok || top.Offset != 0 {
		t.Fatalf("welcome positions = %+v, want %s", u.positions(), name)
	}
	ctx := context.Background()
	if err := e.hub.ToUser(ctx, id, "n", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.hub.Broadcast(ctx, name, "n", 2); err != nil {
		t.Fatal(err)
	}
	// ToUser and the user room are one stream.
	u.expectEvents(name, top.Epoch, 1, 2)
	u.ws.CloseNow()
	if err := e.hub.ToUser(ctx, id, "n", 3); err != nil {
		t.Fatal(err)
	}
	back := e.connect(claims{sub: id})
	r, ferr := back.join(1, name, &pos{2, top.Epoch})
	if ferr != nil || !*r.Recovered || *r.Missed != 1 {
		t.Fatalf("recovery = %+v, %+v", r, ferr)
	}
	back.expectEvents(name, top.Epoch, 3)

	t.Run("someone_else_cannot_recover_it", func(t *testing.T) {
		bo := e.connect(claims{sub: "bo"})
		if _, ferr := bo.join(1, name, &pos{0, top.Epoch}); ferr == nil || ferr.Code != hub.CodeForbidden {
			t.Fatalf("bo's recovery of %s answered %+v, want FORBIDDEN", name, ferr)
		}
	})
	t.Run("erasure_starts_a_new_epoch_and_says_so", func(t *testing.T) {
		if err := e.hub.EraseUser(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := e.hub.ToUser(ctx, id, "n", 1); err != nil {
			t.Fatal(err)
		}
		f := back.next()
		if f.Type != "event" || f.Event != "$recover" || f.Room != name {
			t.Fatalf("after an erasure got %+v, want $recover of %s", f, name)
		}
		var was pos
		if err := json.Unmarshal(f.Data, &was); err != nil || was != (pos{3, top.Epoch}) {
			t.Fatalf("$recover data %s, want the last position sent {3 %s}", f.Data, top.Epoch)
		}
		got := back.events(name, 1)[0]
		if got.pos.Offset != 1 || got.pos.Epoch == top.Epoch {
			t.Fatalf("first message after the erasure at %+v, want offset 1 of a new epoch", got.pos)
		}
		r, ferr := back.join(2, name, &pos{3, top.Epoch})
		if ferr != nil || *r.Recovered || r.top() != got.pos {
			t.Fatalf("recovery across the erasure = %+v, %+v; want not recovered, top %+v", r, ferr, got.pos)
		}
	})
}

func TestIdempotentPublish(t *testing.T) {
	bus := memory.NewBus()
	t.Cleanup(bus.Close)
	policies := map[string]hub.HistoryPolicy{"user": {Size: 10}}
	configure := func(o *hub.Options) { o.Broker = bus.Broker(); o.History = policies }
	a := newEnv(t, configure)
	b := newEnv(t, configure)
	ana := a.connect(claims{sub: "ana", tenant: "acme"})
	ctx := context.Background()
	for i, h := range []*hub.Hub{a.hub, b.hub, a.hub} {
		if err := h.ToUser(ctx, "ana", "n", 1, hub.Idempotent("order-42")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := b.hub.ToUser(ctx, "ana", "n", 2, hub.Idempotent("order-43")); err != nil {
		t.Fatal(err)
	}
	epoch := ana.positions()["user:ana"].Epoch
	ana.expectEvents("user:ana", epoch, 1, 2)

	t.Run("every_target", func(t *testing.T) {
		for _, publish := range []func(opt hub.BroadcastOption) error{
			func(o hub.BroadcastOption) error { return a.hub.ToAll(ctx, "x", nil, o) },
			func(o hub.BroadcastOption) error { return a.hub.ToTenant(ctx, "acme", "x", nil, o) },
			func(o hub.BroadcastOption) error { return a.hub.Broadcast(ctx, "tenant:acme", "x", nil, o) },
		} {
			for range 2 {
				if err := publish(hub.Idempotent("k")); err != nil {
					t.Fatal(err)
				}
			}
		}
		// ToTenant and Broadcast to the tenant's room share a topic, hence
		// the key: three events, not four.
		for range 2 {
			if f := ana.next(); f.Type != "event" || f.Event != "x" {
				t.Fatalf("got %+v", f)
			}
		}
		if f, err := ana.read(300 * time.Millisecond); err == nil {
			t.Fatalf("a duplicate was delivered: %+v", f)
		}
	})
	t.Run("a_key_too_long_is_refused", func(t *testing.T) {
		err := a.hub.ToUser(ctx, "ana", "n", 1, hub.Idempotent(strings.Repeat("k", adapter.MaxIdempotencyKeyLen+1)))
		if !errors.Is(err, adapter.ErrInvalidOptions) {
			t.Fatalf("err = %v, want ErrInvalidOptions", err)
		}
	})
}

func TestHistoryOptionsAreValidated(t *testing.T) {
	for name, policies := range map[string]map[string]hub.HistoryPolicy{
		"size_zero":         {"tenant": {}},
		"size_negative":     {"tenant": {Size: -1}},
		"size_too_large":    {"tenant": {Size: hub.MaxHistorySize + 1}},
		"ttl_negative":      {"tenant": {Size: 1, TTL: -time.Second}},
		"ttl_too_long":      {"tenant": {Size: 1, TTL: hub.MaxHistoryTTL + time.Second}},
		"kind_with_a_colon": {"tenant:acme": {Size: 1}},
		"kind_upper_case":   {"Tenant": {Size: 1}},
		"kind_empty":        {"": {Size: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			authn := newAuthn(t)
			if _, err := hub.New(hub.Options{Authenticator: authn, History: policies}); err == nil {
				t.Fatalf("New accepted History %+v", policies)
			}
		})
	}
	t.Run("max_recovery_negative", func(t *testing.T) {
		if _, err := hub.New(hub.Options{Authenticator: newAuthn(t), MaxRecovery: -1}); err == nil {
			t.Fatal("New accepted a negative MaxRecovery")
		}
	})
	t.Run("bounds_are_accepted", func(t *testing.T) {
		h, err := hub.New(hub.Options{Authenticator: newAuthn(t), History: map[string]hub.HistoryPolicy{
			"tenant": {Size: hub.MaxHistorySize, TTL: hub.MaxHistoryTTL}, "user": {Size: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		_ = h.Shutdown(context.Background())
	})
}

func ExampleIdempotent() {
	authn, _ := auth.NewJWT(auth.JWTOptions{HMACSecret: testSecret})
	h, _ := hub.New(hub.Options{Authenticator: authn})
	defer h.Shutdown(context.Background())
	ctx := context.Background()
	// A retry after a timeout: the first attempt may have been delivered.
	for range 2 {
		err := h.ToUser(ctx, "ana", "order:shipped", map[string]string{"order": "42"}, hub.Idempotent("order-42-shipped"))
		fmt.Println(err)
	}
	// Output:
	// <nil>
	// <nil>
}

func TestTransientEventsStayOutOfHistory(t *testing.T) {
	e, _ := historyEnv(t, tenantHistory, nil)
	ana := e.connect(claims{sub: "ana", tenant: "acme"})
	epoch := ana.positions()["tenant:acme"].Epoch
	ctx := context.Background()
	toTenant(t, e.hub, "acme", 1, 1)
	if err := e.hub.Broadcast(ctx, "tenant:acme", "typing", 0, hub.Transient()); err != nil {
		t.Fatal(err)
	}
	toTenant(t, e.hub, "acme", 2, 2)
	ana.expectEvents("tenant:acme", epoch, 1)
	if f := ana.next(); f.Event != "typing" || f.Offset != nil || f.Room != "tenant:acme" {
		t.Fatalf("transient event %+v, want one without a position", f)
	}
	ana.expectEvents("tenant:acme", epoch, 2) // no gap: it took no offset
	r, ferr := ana.join(1, "tenant:acme", &pos{0, epoch})
	if ferr != nil || !*r.Recovered || *r.Missed != 2 {
		t.Fatalf("recovery = %+v, %+v; want the two kept events only", r, ferr)
	}
	ana.expectEvents("tenant:acme", epoch, 1, 2)
}
