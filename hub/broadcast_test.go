package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
)

// countingData counts how often it is encoded.
type countingData struct{ n *atomic.Int32 }

func (c countingData) MarshalJSON() ([]byte, error) {
	c.n.Add(1)
	return []byte(`{"hello":"room"}`), nil
}

func TestBroadcast(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.Rooms = allowAll })
	ctx := context.Background()
	const members = 20
	clients := make([]*client, members)
	for i := range clients {
		clients[i] = e.connect(claims{sub: "user" + string(rune('a'+i)), tenant: "acme"})
		clients[i].send(map[string]any{"type": "join", "id": 1, "room": "conversation:1"})
		if f := clients[i].next(); f.Type != "ack" {
			t.Fatalf("join: %+v", f)
		}
	}
	outsider := e.connect(claims{sub: "zed", tenant: "globex"})

	t.Run("room_broadcast_is_encoded_once_and_reaches_every_member", func(t *testing.T) {
		var encodes atomic.Int32
		if err := e.hub.Broadcast(ctx, "conversation:1", "message:new", countingData{&encodes}); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			c.t = t
			f := c.next()
			if f.Type != "event" || f.Event != "message:new" || f.Room != "conversation:1" || string(f.Data) != `{"hello":"room"}` {
				t.Fatalf("got %+v", f)
			}
		}
		if n := encodes.Load(); n != 1 {
			t.Fatalf("data encoded %d times for %d recipients, want once", n, members)
		}
	})
	t.Run("except_sender_skips_only_the_sender", func(t *testing.T) {
		if err := e.hub.Broadcast(ctx, "conversation:1", "typing", nil, hub.Except(clients[0].connID())); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients[1:] {
			c.t = t
			if f := c.next(); f.Event != "typing" {
				t.Fatalf("got %+v", f)
			}
		}
		// The sender's next frame is a later marker, not the broadcast.
		if err := e.hub.ToUser(ctx, "usera", "marker", nil); err != nil {
			t.Fatal(err)
		}
		assertNext(t, clients[0], "marker")
	})
	t.Run("to_user_tenant_and_all", func(t *testing.T) {
		for _, c := range append(clients, outsider) {
			c.t = t
		}
		if err := e.hub.ToUser(ctx, "zed", "dm", map[string]int{"n": 1}); err != nil {
			t.Fatal(err)
		}
		if f := outsider.next(); f.Event != "dm" {
			t.Fatalf("user delivery: %+v", f)
		}
		if err := e.hub.ToTenant(ctx, "acme", "notice", nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			if f := c.next(); f.Event != "notice" {
				t.Fatalf("tenant delivery: %+v", f)
			}
		}
		if err := e.hub.ToAll(ctx, "maintenance", nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range append(clients, outsider) {
			if f := c.next(); f.Event != "maintenance" {
				t.Fatalf("all delivery: %+v", f)
			}
		}
	})
}

// assertNext checks that the next frame c receives is event: whatever the
// test expects not to arrive would have come before it. (A read deadline
// cannot prove silence: coder/websocket closes a connection whose read
// context expires.)
func assertNext(t *testing.T, c *client, event string) {
	t.Helper()
	if f := c.next(); f.Event != event {
		t.Fatalf("got %+v, want event %s", f, event)
	}
}

func TestHandlerContextBroadcastAndServerJoin(t *testing.T) {
	e := newEnv(t, nil)
	hub.Handle(e.hub, "enter", func(ctx hub.Context, in struct {
		Room string `json:"room" validate:"required"`
	}) (struct{}, error) {
		// The server decides: no room policy for server-side joins.
		return struct{}{}, ctx.Join(in.Room)
	})
	hub.Handle(e.hub, "say", func(ctx hub.Context, in struct {
		Text string `json:"text"`
	}) (struct{}, error) {
		return struct{}{}, ctx.Broadcast("case:9", "said", in, hub.Except(ctx.ConnID()))
	})
	a := e.connect(claims{sub: "a"})
	b := e.connect(claims{sub: "b"})
	for _, c := range []*client{a, b} {
		c.send(map[string]any{"type": "event", "id": 1, "event": "enter", "data": map[string]string{"room": "case:9"}})
		if f := c.next(); f.Type != "ack" {
			t.Fatalf("enter: %+v", f)
		}
	}
	a.send(map[string]any{"type": "event", "id": 2, "event": "say", "data": map[string]string{"text": "hi"}})
	if f := a.next(); f.Type != "ack" {
		t.Fatalf("say: %+v", f)
	}
	f := b.next()
	var d struct{ Text string }
	_ = json.Unmarshal(f.Data, &d)
	if f.Event != "said" || d.Text != "hi" {
		t.Fatalf("b got %+v", f)
	}
	if err := e.hub.ToUser(context.Background(), "a", "marker", nil); err != nil {
		t.Fatal(err)
	}
	assertNext(t, a, "marker") // Except(ctx.ConnID()) left the sender out
}

func TestTwoHubsOnOneBus(t *testing.T) {
	bus := memory.NewBus()
	a := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker(); o.Rooms = allowAll })
	b := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker(); o.Rooms = allowAll })
	ca := a.connect(claims{sub: "u1"})
	cb := b.connect(claims{sub: "u2"})
	for _, c := range []*client{ca, cb} {
		c.send(map[string]any{"type": "join", "id": 1, "room": "conversation:x"})
		c.next()
	}
	if err := a.hub.Broadcast(context.Background(), "conversation:x", "hello", nil, hub.Except(ca.connID())); err != nil {
		t.Fatal(err)
	}
	if f := cb.next(); f.Event != "hello" {
		t.Fatalf("node B member got %+v", f)
	}
	// Cross-node user delivery; ca's next frame is it, so except held too.
	if err := b.hub.ToUser(context.Background(), "u1", "dm", nil); err != nil {
		t.Fatal(err)
	}
	assertNext(t, ca, "dm")
}

func TestDisconnectUserEverywhere(t *testing.T) {
	bus := memory.NewBus()
	a := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker() })
	b := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker() })
	victims := []*client{a.connect(claims{sub: "mallory"}), b.connect(claims{sub: "mallory"})}
	bystander := b.connect(claims{sub: "alice"})
	if err := a.hub.DisconnectUser(context.Background(), "mallory", "logout"); err != nil {
		t.Fatal(err)
	}
	for _, c := range victims {
		f := c.next()
		if f.Type != "bye" || !strings.Contains(string(f.Data), "logout") {
			t.Fatalf("got %+v, want bye logout", f)
		}
		if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseUnauthorized) {
			t.Fatalf("close = %d, want 4001", got)
		}
	}
	if err := b.hub.ToUser(context.Background(), "alice", "still-here", nil); err != nil {
		t.Fatal(err)
	}
	assertNext(t, bystander, "still-here")
}

func TestPresenceFromLocalConnections(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.Rooms = allowAll })
	a1 := e.connect(claims{sub: "alice"})
	a2 := e.connect(claims{sub: "alice"})
	b := e.connect(claims{sub: "bob"})
	for _, c := range []*client{a1, a2, b} {
		c.send(map[string]any{"type": "join", "id": 1, "room": "case:7"})
		c.next()
	}
	users, err := e.hub.Presence(context.Background(), "case:7")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(users)
	if !slices.Equal(users, []string{"alice", "bob"}) {
		t.Fatalf("presence = %v", users)
	}
	b.ws.CloseNow()
	eventually(t, "bob to leave", func() bool {
		users, _ := e.hub.Presence(context.Background(), "case:7")
		return slices.Equal(users, []string{"alice"})
	})
}

// recordingPresence is a Presence store that keeps every call, in order.
type recordingPresence struct {
	mu    sync.Mutex
	calls []string
}

func (p *recordingPresence) Add(room, user, _ string) { p.record("add " + room + " " + user) }
func (p *recordingPresence) Remove(room, user, _ string) {
	p.record("remove " + room + " " + user)
}
func (p *recordingPresence) Users(context.Context, string) ([]string, error) { return nil, nil }
func (p *recordingPresence) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, s)
}
func (p *recordingPresence) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// Presence hears of a room only when the connection was in it: leaving a
// room never joined (which any client may ask for) writes nothing to the
// store.
func TestPresenceStoreSeesOnlyRealMemberships(t *testing.T) {
	store := &recordingPresence{}
	e := newEnv(t, func(o *hub.Options) {
		o.Rooms = allowAll
		o.Presence = store
		o.AutoRooms = func(context.Context, auth.Identity) ([]string, error) { return nil, nil }
	})
	c := e.connect(claims{sub: "alice"})
	for i, m := range []map[string]any{
		{"type": "join", "room": "case:1"},
		{"type": "leave", "room": "case:2"}, // never joined
		{"type": "leave", "room": "case:1"},
		{"type": "leave", "room": "case:1"}, // already left
	} {
		m["id"] = i + 1
		c.send(m)
		if f := c.next(); f.Type != "ack" {
			t.Fatalf("%v: %+v", m, f)
		}
	}
	want := []string{"add case:1 alice", "remove case:1 alice"}
	if got := store.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("presence calls = %q, want %q", got, want)
	}
}

// gatedPresence blocks Add for one room until released, so a test can end
// the connection in the middle of a join.
type gatedPresence struct {
	recordingPresence
	room             string
	entered, proceed chan struct{}
}

func (p *gatedPresence) Add(room, user, conn string) {
	if room == p.room {
		close(p.entered)
		<-p.proceed
	}
	p.recordingPresence.Add(room, user, conn)
}

// A server-side join racing the connection's end is undone, presence
// included, although cleanup emptied the index before Presence.Add ran.
func TestJoinRacingCleanupLeavesNoPresence(t *testing.T) {
	p := &gatedPresence{room: "case:late", entered: make(chan struct{}), proceed: make(chan struct{})}
	e := newEnv(t, func(o *hub.Options) {
		o.Presence = p
		o.AutoRooms = func(context.Context, auth.Identity) ([]string, error) { return nil, nil }
	})
	c := e.connect(claims{sub: "alice"})
	id := c.connID()
	errc := make(chan error, 1)
	go func() { errc <- e.hub.JoinConn(id, "case:late") }()
	<-p.entered // in the index; presence not yet recorded
	c.ws.CloseNow()
	eventually(t, "cleanup", func() bool { return e.hub.Connections() == 0 })
	close(p.proceed)
	if err := <-errc; !errors.Is(err, hub.ErrUnknownConnection) {
		t.Fatalf("JoinConn = %v, want ErrUnknownConnection", err)
	}
	// Replayed in order, the calls must leave nobody present.
	present := map[string]bool{}
	calls := p.snapshot()
	for _, call := range calls {
		op, entry, _ := strings.Cut(call, " ")
		present[entry] = op == "add"
	}
	if present["case:late alice"] {
		t.Fatalf("presence calls %q leave alice in case:late after her connection ended", calls)
	}
}
