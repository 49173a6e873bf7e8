package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/hub"
)

// TestHistoryMergeWithLive: messages published between every step of a
// recovery reach the client once each, in order, without a gap.
func TestHistoryMergeWithLive(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inRoom  bool // the connection is in the room already (after its welcome)
		since   *pos // nil: a plain join
		perStep int
	}{
		{"recovery_of_a_room_it_is_in", true, &pos{1, ""}, 1},
		{"recovery_of_a_room_it_is_in_three_per_step", true, &pos{1, ""}, 3},
		{"join_of_a_new_room_with_since", false, &pos{0, ""}, 2},
		{"plain_join_of_a_new_room", false, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policies := map[string]hub.HistoryPolicy{"tenant": {Size: 100}, "conversation": {Size: 100}}
			e, _ := historyEnv(t, policies, func(o *hub.Options) {
				o.Rooms = allowAll
			})
			name := "tenant:acme"
			if !tc.inRoom {
				name = "conversation:1"
			}
			ana := e.connect(claims{sub: "ana", tenant: "acme"})
			n := 0
			publish := func() {
				n++
				if err := e.hub.Broadcast(context.Background(), name, "n", n); err != nil {
					t.Error(err)
				}
			}
			publish()
			publish()
			// What the client holds: the tenant room's messages so far, or
			// nothing of a room it never was in.
			epoch := ""
			if tc.inRoom {
				got := ana.events(name, 2)
				epoch = got[0].pos.Epoch
			}
			if !tc.inRoom && tc.since != nil {
				// Another connection learns the room's epoch.
				r, _ := e.connect(claims{sub: "bo"}).join(1, name, nil)
				epoch = r.Epoch
			}
			var since *pos
			if tc.since != nil {
				since = &pos{tc.since.Offset, epoch}
			}
			var steps []string
			replayed := make(chan struct{})
			var over atomic.Bool // the recovery replayed: steps and n are the test's again
			defer hub.SetRecoveryHook(func(step string) {
				if over.Load() {
					return // a later release or repair, on another goroutine
				}
				steps = append(steps, step)
				for range tc.perStep {
					publish()
				}
				if step == "replayed" {
					over.Store(true)
					close(replayed)
				}
			})()
			r, ferr := ana.join(1, name, since)
			if ferr != nil {
				t.Fatal(ferr)
			}
			select {
			case <-replayed:
			case <-time.After(10 * time.Second):
				t.Fatal("the recovery did not finish")
			}
			// The hook ran on the connection's goroutine, before replayed
			// was closed: steps and n are the test's again.
			hub.SetRecoveryHook(nil)
			final := n
			publish() // a live one after the recovery
			var from int
			switch {
			case since != nil:
				if !*r.Recovered {
					t.Fatalf("not recovered: %+v", r)
				}
				from = int(since.Offset) + 1
			default:
				from = int(*r.Offset) + 1
			}
			want := make([]int, 0, final+1-from+1)
			for i := from; i <= final+1; i++ {
				want = append(want, i)
			}
			if since != nil && *r.Missed != int(*r.Offset)-int(since.Offset) {
				t.Fatalf("missed %d, top %d, since %d", *r.Missed, *r.Offset, since.Offset)
			}
			defer func() {
				if t.Failed() {
					t.Log(e.log.String())
				}
			}()
			ana.expectEvents(name, r.Epoch, want...)
			if len(steps) < 5 {
				t.Fatalf("the hook ran at %v only", steps)
			}
		})
	}
}

// gatedBroker is a real broker whose History calls are counted and, once
// gate is set, wait for it to close: it lets a test hold a read in flight.
type gatedBroker struct {
	adapter.Broker
	mu    sync.Mutex // guards gate
	gate  chan struct{}
	calls atomic.Int32
}

func (g *gatedBroker) History(ctx context.Context, topic string, q adapter.HistoryQuery) (adapter.HistoryResult, error) {
	g.calls.Add(1)
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return adapter.HistoryResult{}, ctx.Err()
		}
	}
	return g.Broker.History(ctx, topic, q)
}

// TestConcurrentRecoveriesShareOneRead: clients of one room coming back
// together cost one history read on a node, not one each.
func TestConcurrentRecoveriesShareOneRead(t *testing.T) {
	bus := memory.NewBus()
	t.Cleanup(bus.Close)
	gb := &gatedBroker{Broker: bus.Broker()}
	e := newEnv(t, func(o *hub.Options) { o.Broker = gb; o.History = tenantHistory; o.CloseBroker = true })
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.connect(claims{sub: fmt.Sprint("u", i), tenant: "acme"})
	}
	epoch := clients[0].positions()["tenant:acme"].Epoch
	toTenant(t, e.hub, "acme", 1, 5)
	for _, c := range clients {
		c.expectEvents("tenant:acme", epoch, 1, 2, 3, 4, 5)
	}
	gate := make(chan struct{})
	gb.mu.Lock()
	gb.gate = gate
	gb.mu.Unlock()
	before := gb.calls.Load()
	var reading atomic.Int32
	defer hub.SetRecoveryHook(func(step string) {
		if step == "reading" {
			reading.Add(1)
		}
	})()
	for _, c := range clients {
		c.send(map[string]any{"type": "join", "id": 1, "room": "tenant:acme", "data": map[string]any{"since": pos{2, epoch}}})
	}
	eventually(t, "every recovery to wait for the read", func() bool { return reading.Load() == n })
	close(gate)
	for _, c := range clients {
		f := c.next()
		var r joinReply
		if err := json.Unmarshal(f.Data, &r); err != nil || f.Type != "ack" || !*r.Recovered || *r.Missed != 3 {
			t.Fatalf("answer %+v (%v)", f, err)
		}
		c.expectEvents("tenant:acme", epoch, 3, 4, 5)
	}
	if got := gb.calls.Load() - before; got != 1 {
		t.Fatalf("%d recoveries made %d history reads, want 1", n, got)
	}
}

// TestWelcomePositionsMergeWithLive: a client that connects while a room
// with history is being published to gets, after the welcome, exactly the
// messages after the top the welcome gave, in order.
func TestWelcomePositionsMergeWithLive(t *testing.T) {
	// The clients read once the publisher is done: their queues hold it all.
	e, _ := historyEnv(t, tenantHistory, func(o *hub.Options) { o.SendQueueMessages = 1024 })
	const total = 400
	published := make(chan struct{})
	started := make(chan struct{})
	go func() {
		defer close(published)
		for i := 1; i <= total; i++ {
			if i == 2 {
				close(started)
			}
			if err := e.hub.ToTenant(context.Background(), "acme", "n", i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	<-started
	var clients []*client
	for i := 0; i < 10; i++ {
		clients = append(clients, e.connect(claims{sub: fmt.Sprint("u", i), tenant: "acme"}))
	}
	<-published
	for i, c := range clients {
		top := c.positions()["tenant:acme"]
		want := make([]int, 0, total)
		for n := int(top.Offset) + 1; n <= total; n++ {
			want = append(want, n)
		}
		c.expectEvents("tenant:acme", top.Epoch, want...)
		if f, err := c.read(100 * time.Millisecond); err == nil {
			t.Fatalf("client %d: after %d got %+v", i, total, f)
		}
	}
}

// TestWelcomeHoldsBackWhatComesBeforeIt: a message published between the
// reading of the welcome's positions and the welcome reaches the client
// after the welcome, as the next one.
func TestWelcomeHoldsBackWhatComesBeforeIt(t *testing.T) {
	e, _ := historyEnv(t, tenantHistory, nil)
	n := 0
	defer hub.SetRecoveryHook(func(step string) {
		if step == "positions" {
			n++
			if err := e.hub.ToTenant(context.Background(), "acme", "n", n); err != nil {
				t.Error(err)
			}
		}
	})()
	ana := e.connect(claims{sub: "ana", tenant: "acme"})
	top := ana.positions()["tenant:acme"]
	if top.Offset != 0 {
		t.Fatalf("welcome top %+v", top)
	}
	ana.expectEvents("tenant:acme", top.Epoch, 1)
}

// TestRecoveryHeldBackPastTheBound: a recovery during which more live
// messages arrive than a connection's queue holds answers recovered false,
// and what follows still comes once and in order.
func TestRecoveryHeldBackPastTheBound(t *testing.T) {
	const queue = 8
	e, _ := historyEnv(t, tenantHistory, func(o *hub.Options) { o.SendQueueMessages = queue })
	ana := e.connect(claims{sub: "ana", tenant: "acme"})
	epoch := ana.positions()["tenant:acme"].Epoch
	toTenant(t, e.hub, "acme", 1, 2)
	ana.expectEvents("tenant:acme", epoch, 1, 2)
	n := 2
	done := make(chan struct{})
	defer hub.SetRecoveryHook(func(step string) {
		if step == "read" {
			for range 2 * queue { // more than the bound, while it holds back
				n++
				if err := e.hub.ToTenant(context.Background(), "acme", "n", n); err != nil {
					t.Error(err)
				}
			}
		}
		if step == "replayed" {
			close(done)
		}
	})()
	r, ferr := ana.join(1, "tenant:acme", &pos{1, epoch})
	if ferr != nil || r.Recovered == nil || *r.Recovered || *r.Missed != 0 || r.top() != (pos{2, epoch}) {
		t.Fatalf("recovery = %+v, %+v; want not recovered, top 2", r, ferr)
	}
	<-done
	hub.SetRecoveryHook(nil)
	toTenant(t, e.hub, "acme", n+1, n+1)
	// From the top on: the messages held until the bound, then those
	// dropped past it, from history, then the live one: every message
	// after the top once, in order.
	want := make([]int, 0, n-1)
	for i := 3; i <= n+1; i++ {
		want = append(want, i)
	}
	ana.expectEvents("tenant:acme", epoch, want...)
}

// TestPlainJoinOfARoomItIsIn: a join without since of a room the
// connection is in already (a frontend joining again after a reconnect)
// answers where the connection stands and skips nothing: events published
// while it is handled reach the client, in order. (It used to hold the
// room back, answer the top and drop what was held up to it.)
func TestPlainJoinOfARoomItIsIn(t *testing.T) {
	e, _ := historyEnv(t, map[string]hub.HistoryPolicy{"tenant": {Size: 100}}, func(o *hub.Options) {
		o.Rooms = allowAll
	})
	const name = "tenant:acme"
	ana := e.connect(claims{sub: "ana", tenant: "acme"})
	n := 0
	publish := func() {
		n++
		if err := e.hub.Broadcast(context.Background(), name, "n", n); err != nil {
			t.Error(err)
		}
	}
	publish()
	publish()
	got := ana.events(name, 2)
	epoch := got[0].pos.Epoch
	defer hub.SetRecoveryHook(func(string) { publish() })()
	r, err := ana.join(1, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	hub.SetRecoveryHook(nil)
	if r.Offset == nil || *r.Offset < 2 || r.Epoch != epoch {
		t.Fatalf("join answered %+v, want the connection's position (at least 2, epoch %s)", r, epoch)
	}
	publish()
	want := make([]int, 0, n-2)
	for i := 3; i <= n; i++ {
		want = append(want, i)
	}
	ana.expectEvents(name, epoch, want...)
}
