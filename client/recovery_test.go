package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
)

// historyNodes are two hubs on one bus keeping the history of user and
// chat rooms, like two nodes of a deployment.
func historyNodes(t *testing.T, size int) (a, b *hub.Hub) {
	t.Helper()
	bus := memory.NewBus()
	t.Cleanup(bus.Close)
	policies := map[string]hub.HistoryPolicy{"user": {Size: size}, "chat": {Size: size}}
	configure := func(o *hub.Options) { o.Broker = bus.Broker(); o.History = policies }
	return newHub(t, configure), newHub(t, configure)
}

// sequences checks every room's events: numbered 1, 2, 3… by the test's
// publishers, so a room's data must be exactly 1..n in order.
type sequences struct {
	mu         sync.Mutex
	next       map[string]int // the number expected next, by room
	errs       []string
	recoveries []client.Recovery
	changed    chan struct{}
}

func newSequences() *sequences {
	return &sequences{next: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (s *sequences) attach(o *client.Options) {
	o.OnEvent = func(ev client.Event) {
		var n int
		if err := json.Unmarshal(ev.Data, &n); err != nil {
			return
		}
		s.mu.Lock()
		want := s.next[ev.Room] + 1
		if n != want {
			s.errs = append(s.errs, fmt.Sprintf("%s: got %d (at %+v), want %d", ev.Room, n, ev.Position, want))
		}
		s.next[ev.Room] = n
		s.mu.Unlock()
		s.nudge()
	}
	o.OnRecovery = func(r client.Recovery) {
		s.mu.Lock()
		s.recoveries = append(s.recoveries, r)
		s.mu.Unlock()
		s.nudge()
	}
}

func (s *sequences) nudge() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until every room reached its count, and fails on any
// event out of sequence.
func (s *sequences) waitFor(t *testing.T, want map[string]int) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		errs, done := s.errs, true
		for room, n := range want {
			done = done && s.next[room] >= n
		}
		got := fmt.Sprint(s.next)
		s.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("out of sequence: %v", errs)
		}
		if done {
			return
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			t.Fatalf("timed out: got %s, want %v", got, want)
		}
	}
}

// reloaded records that the application reloaded a room up to the
// position before next, as it does after a recovery that failed.
func (s *sequences) reloaded(room string, next int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next[room] = next
}

func (s *sequences) recovery(room string) []client.Recovery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []client.Recovery
	for _, r := range s.recoveries {
		if r.Room == room {
			out = append(out, r)
		}
	}
	return out
}

// counter publishes 1, 2, 3… to the room chat:1 and to the user ana.
type counter struct{ room, user int }

func (c *counter) toRoom(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	for range n {
		c.room++
		if err := h.Broadcast(context.Background(), "chat:1", "n", c.room); err != nil {
			t.Error(err)
		}
	}
}

func (c *counter) toUser(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	for range n {
		c.user++
		if err := h.ToUser(context.Background(), "ana", "n", c.user); err != nil {
			t.Error(err)
		}
	}
}

func TestReconnectRecoversWhatWasMissed(t *testing.T) {
	a, b := historyNodes(t, 100)
	srv := startServer(t, a)
	seq := newSequences()
	opts := srv.options(t, "ana")
	opts.Backoff = client.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	seq.attach(&opts)
	c := dial(t, opts)
	if err := c.Join(context.Background(), "chat:1"); err != nil {
		t.Fatal(err)
	}
	// The join's ack gives the room's top: nothing yet, but a position.
	if p, ok := c.Position("chat:1"); !ok || p.Offset != 0 || p.Epoch == "" {
		t.Fatalf("position after the join = %+v, %v", p, ok)
	}
	var n counter
	n.toRoom(t, a, 3)
	n.toUser(t, a, 2)
	seq.waitFor(t, map[string]int{"chat:1": 3, "user:ana": 2})

	srv.kill() // a node goes away without a word
	n.toRoom(t, b, 3)
	n.toUser(t, b, 2)
	srv.restart(b) // its clients reach another node
	seq.waitFor(t, map[string]int{"chat:1": 6, "user:ana": 4})
	for _, room := range []string{"chat:1", "user:ana"} {
		// Reported after the missed events, on the same goroutine.
		eventually(t, "the recovery of "+room, func() bool { return len(seq.recovery(room)) > 0 })
		rs := seq.recovery(room)
		if len(rs) != 1 || !rs[0].Recovered || rs[0].Missed != map[string]int{"chat:1": 3, "user:ana": 2}[room] || rs[0].Err != nil {
			t.Fatalf("recoveries of %s: %+v", room, rs)
		}
	}
	n.toRoom(t, b, 1)
	seq.waitFor(t, map[string]int{"chat:1": 7})
	if p, ok := c.Position("chat:1"); !ok || p.Offset != 7 {
		t.Fatalf("position of chat:1 = %+v, %v", p, ok)
	}
}

func TestReconnectThatCannotRecoverSaysSo(t *testing.T) {
	a, b := historyNodes(t, 2)
	srv := startServer(t, a)
	seq := newSequences()
	opts := srv.options(t, "ana")
	opts.Backoff = client.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	seq.attach(&opts)
	c := dial(t, opts)
	if err := c.Join(context.Background(), "chat:1"); err != nil {
		t.Fatal(err)
	}
	var n counter
	n.toRoom(t, a, 1)
	seq.waitFor(t, map[string]int{"chat:1": 1})
	srv.kill()
	n.toRoom(t, b, 3) // one more than the history keeps
	srv.restart(b)
	eventually(t, "a recovery report", func() bool { return len(seq.recovery("chat:1")) > 0 })
	if rs := seq.recovery("chat:1"); len(rs) != 1 || rs[0].Recovered || rs[0].Position.Offset != 4 {
		t.Fatalf("recoveries %+v, want one not recovered at offset 4", rs)
	}
	// What follows the top is delivered: the application reloaded up to it.
	seq.reloaded("chat:1", 4)
	n.toRoom(t, b, 1)
	seq.waitFor(t, map[string]int{"chat:1": 5})
}

// While the client reconnects, the publishers do not stop: every event
// arrives once, in order, whether it came live, held back or recovered.
func TestReconnectUnderLoadLosesNothing(t *testing.T) {
	a, b := historyNodes(t, 1000)
	srv := startServer(t, a)
	seq := newSequences()
	opts := srv.options(t, "ana")
	opts.Backoff = client.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	seq.attach(&opts)
	c := dial(t, opts)
	if err := c.Join(context.Background(), "chat:1"); err != nil {
		t.Fatal(err)
	}
	var node atomic.Pointer[hub.Hub]
	node.Store(a)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var n counter
	wg.Go(func() {
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n.toRoom(t, node.Load(), 1)
			n.toUser(t, node.Load(), 1)
			// A steady flow: a reconnect misses far fewer than the 300 a
			// recovery may replay.
			time.Sleep(time.Millisecond)
		}
	})
	progress := func() int {
		seq.mu.Lock()
		defer seq.mu.Unlock()
		return seq.next["chat:1"]
	}
	for range 3 {
		was, conn := progress(), c.ConnID()
		eventually(t, "traffic on the connection", func() bool { return progress() > was+20 })
		srv.dropConns()
		node.Store(map[*hub.Hub]*hub.Hub{a: b, b: a}[node.Load()])
		srv.setHandler(node.Load())
		eventually(t, "a new connection", func() bool { id := c.ConnID(); return id != "" && id != conn })
	}
	was := progress()
	eventually(t, "traffic after the last reconnect", func() bool { return progress() > was+20 })
	close(stop)
	wg.Wait()
	seq.waitFor(t, map[string]int{"chat:1": n.room, "user:ana": n.user})
	for _, room := range []string{"chat:1", "user:ana"} {
		if len(seq.recovery(room)) < 3 {
			t.Fatalf("%s: %d recoveries over 3 reconnects", room, len(seq.recovery(room)))
		}
		for _, r := range seq.recovery(room) {
			if !r.Recovered {
				t.Fatalf("%s did not recover: %+v", room, r)
			}
		}
	}
}

// The server's $recover (here: the user's history erased, so the next
// message starts a new epoch) makes the client recover the room, which it
// cannot, and say so before the events after the new top.
func TestServerAskedRecovery(t *testing.T) {
	a, _ := historyNodes(t, 100)
	srv := startServer(t, a)
	seq := newSequences()
	opts := srv.options(t, "ana")
	seq.attach(&opts)
	dial(t, opts)
	var n counter
	n.toUser(t, a, 2)
	seq.waitFor(t, map[string]int{"user:ana": 2})
	if err := a.EraseUser(context.Background(), "ana"); err != nil {
		t.Fatal(err)
	}
	n.user = 0
	n.toUser(t, a, 1) // offset 1 of a new epoch, after a $recover
	eventually(t, "a recovery report", func() bool { return len(seq.recovery("user:ana")) > 0 })
	rs := seq.recovery("user:ana")
	if len(rs) != 1 || rs[0].Recovered || rs[0].Position.Offset != 1 {
		t.Fatalf("recoveries %+v, want one that did not recover, at offset 1", rs)
	}
	// The application reloads up to the position; what follows comes.
	seq.reloaded("user:ana", 1)
	n.toUser(t, a, 2)
	seq.waitFor(t, map[string]int{"user:ana": 3})
}

// TestRecoveryHoldsBackUntilTheReplay scripts the server's side of a
// reconnect: an event of an automatic room arrives live before the
// recovery's answer, then the missed events, then it again. The
// application gets each once, in offset order.
func TestRecoveryHoldsBackUntilTheReplay(t *testing.T) {
	var conns atomic.Int32
	joined := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"wsgate.v1"}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		send := func(f string) { _ = ws.Write(ctx, websocket.MessageText, []byte(f)) }
		welcome := `{"type":"welcome","data":{"connectionId":"c%d","userId":"alice","expiresAt":0,"heartbeatMs":25000,"positions":{"user:alice":{"offset":%d,"epoch":"E"}}}}`
		event := `{"type":"event","event":"n","room":"user:alice","offset":%d,"epoch":"E","data":%d}`
		if conns.Add(1) == 1 {
			send(fmt.Sprintf(welcome, 1, 3))
			_ = ws.Close(websocket.StatusServiceRestart, "shutdown")
			return
		}
		send(fmt.Sprintf(welcome, 2, 5))
		send(fmt.Sprintf(event, 6, 6)) // live, before the client's join
		_, b, err := ws.Read(ctx)
		if err != nil {
			return
		}
		joined <- string(b)
		var j struct {
			ID uint64 `json:"id"`
		}
		_ = json.Unmarshal(b, &j)
		send(fmt.Sprintf(`{"type":"ack","id":%d,"data":{"offset":6,"epoch":"E","recovered":true,"missed":3}}`, j.ID))
		for n := 4; n <= 7; n++ {
			send(fmt.Sprintf(event, n, n))
		}
		_, _, _ = ws.Read(ctx) // until the client goes
	}))
	defer srv.Close()
	seq := newSequences()
	seq.next["user:alice"] = 3
	opts := client.Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Token: func(context.Context) (string, error) { return "t", nil },
		Backoff: client.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}}
	seq.attach(&opts)
	dial(t, opts)
	seq.waitFor(t, map[string]int{"user:alice": 7})
	select {
	case j := <-joined:
		if j != `{"type":"join","id":1,"room":"user:alice","data":{"since":{"offset":3,"epoch":"E"}}}` {
			t.Fatalf("the client sent %s", j)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no join")
	}
	if rs := seq.recovery("user:alice"); len(rs) != 1 || !rs[0].Recovered || rs[0].Missed != 3 {
		t.Fatalf("recoveries %+v", rs)
	}
}
