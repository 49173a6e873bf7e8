package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/room"
)

// recordHas reports whether the last record saved of pid holds sub.
func (cl *cluster) recordHas(pid, sub string) bool {
	return strings.Contains(cl.spy.saved(pid), sub)
}

// cluster is two nodes — each a hub and a Server with recovery — on one
// memory bus, sharing one session store: what two processes on Redis are,
// in one process.
type cluster struct {
	t     *testing.T
	nodes [2]*env
	store *memory.Sessions
	spy   *spyStore // store, as the nodes use it
	bus   *memory.Bus
}

// spyStore is a SessionStore that keeps a copy of the last record saved
// under each id, for the tests to read without taking it.
type spyStore struct {
	adapter.SessionStore
	mu      sync.Mutex
	last    map[string][]byte
	deleted map[string]bool
	down    atomic.Bool // Save and Delete fail, as a store that cannot be reached
}

var errStoreDown = errors.New("the store is down")

func (s *spyStore) Save(ctx context.Context, id string, v uint64, record []byte, ttl time.Duration) error {
	if s.down.Load() {
		return errStoreDown
	}
	err := s.SessionStore.Save(ctx, id, v, record, ttl)
	if err == nil {
		s.mu.Lock()
		s.last[id] = bytes.Clone(record)
		s.mu.Unlock()
	}
	return err
}

func (s *spyStore) Delete(ctx context.Context, id string, v uint64, ttl time.Duration) error {
	if s.down.Load() {
		return errStoreDown
	}
	err := s.SessionStore.Delete(ctx, id, v, ttl)
	if err == nil {
		s.mu.Lock()
		s.deleted[id] = true
		s.mu.Unlock()
	}
	return err
}

func (s *spyStore) isDeleted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[id]
}

func (s *spyStore) saved(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.last[id])
}

func newCluster(t *testing.T, mutate func(*hub.Options)) *cluster {
	t.Helper()
	bus := memory.NewBus()
	t.Cleanup(bus.Close)
	cl := &cluster{t: t, store: memory.NewSessions(memory.SessionsOptions{}), bus: bus}
	cl.spy = &spyStore{SessionStore: cl.store, last: make(map[string][]byte), deleted: make(map[string]bool)}
	t.Cleanup(func() { _ = cl.store.Close() })
	for i := range cl.nodes {
		e := &env{t: t, logs: &testutil.SyncBuffer{}}
		e.main = newTestHub(t, e.logs, func(o *hub.Options) {
			o.Broker = bus.Broker()
			o.History = map[string]hub.HistoryPolicy{"topic": {Size: 20, TTL: time.Minute}, "user": {Size: 20, TTL: time.Minute}}
			if mutate != nil {
				mutate(o)
			}
		})
		// "enter" joins the room of its input as the server decides.
		hub.Handle(e.main, "enter", func(ctx hub.Context, in struct {
			Room string `json:"room"`
		}) (struct{}, error) {
			return struct{}{}, ctx.Join(in.Room)
		})
		srv, err := New(Options{
			Namespaces: map[string]*hub.Hub{"/": e.main},
			Logger:     slog.New(slog.NewJSONHandler(e.logs, nil)),
			Recovery:   &Recovery{Store: cl.spy, MaxDisconnectionDuration: time.Minute},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.srv = srv
		hs := httptest.NewServer(srv)
		e.url, e.origin = hs.URL, hs.URL
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_ = srv.Shutdown(ctx)
			hs.Close()
		})
		cl.nodes[i] = e
	}
	return cl
}

// clientSession is what socket.io-client keeps for recovery: the pid of the
// CONNECT and the last argument of the last event.
type clientSession struct {
	pid, offset string
}

// connectRecovering joins "/" with auth (a JSON object's members) and the
// session's pid and offset when it has them, and returns the CONNECT's pid.
func (c *wsClient) connectRecovering(auth string, s clientSession) string {
	c.t.Helper()
	payload := "{" + auth
	if s.pid != "" {
		payload += fmt.Sprintf(`,"pid":%q`, s.pid)
		if s.offset != "" {
			payload += fmt.Sprintf(`,"offset":%q`, s.offset)
		}
	}
	c.send("40" + payload + "}")
	got := c.expect(`40{"sid":"*`)
	var ack struct {
		SID string `json:"sid"`
		PID string `json:"pid"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got, "40")), &ack); err != nil || ack.SID == "" || ack.PID == "" {
		c.t.Fatalf("CONNECT answer %q has no sid and pid", got)
	}
	c.sid = ack.SID
	return ack.PID
}

// event reads the next event and returns its name, its first argument and
// its last (the offset).
func (c *wsClient) event() (name string, arg json.RawMessage, offset string) {
	c.t.Helper()
	got := c.expect("42[*")
	var args []json.RawMessage
	if err := json.Unmarshal([]byte(got[2:]), &args); err != nil || len(args) < 2 {
		c.t.Fatalf("event %q", got)
	}
	_ = json.Unmarshal(args[0], &name)
	if err := json.Unmarshal(args[len(args)-1], &offset); err != nil || !strings.HasPrefix(offset, "g") {
		c.t.Fatalf("event %q has no offset as its last argument", got)
	}
	return name, args[1], offset
}

// expectNews reads the events "news" numbered want, in order, and returns
// the session updated with the last offset.
func (c *wsClient) expectNews(s clientSession, want ...int) clientSession {
	c.t.Helper()
	for _, n := range want {
		name, arg, offset := c.event()
		var got struct{ N int }
		if name != "news" || json.Unmarshal(arg, &got) != nil || got.N != n {
			c.t.Fatalf("got %s %s, want news %d", name, arg, n)
		}
		s.offset = offset
	}
	return s
}

func (cl *cluster) publish(node int, room string, from, to int) {
	cl.t.Helper()
	for n := from; n <= to; n++ {
		if err := cl.nodes[node].main.Broadcast(context.Background(), room, "news", map[string]int{"n": n}); err != nil {
			cl.t.Fatal(err)
		}
	}
}

// inNews connects alice to node 0, joins topic:news and receives the news
// 1 to n: a client with a session to resume.
func (cl *cluster) inNews(n int) (*wsClient, clientSession) {
	cl.t.Helper()
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	a.joinRoom("topic:news")
	cl.publish(0, "topic:news", 1, n)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	return a, a.expectNews(clientSession{pid: pid}, want...)
}

// joinRoom joins a room through the join event and waits for its ack.
func (c *wsClient) joinRoom(name string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`421["join",%q]`, name))
	c.expect("431[*")
}

// A client of node A that loses its connection and comes back to node B
// resumes its session: the same pid (socket.recovered), the events it
// missed in order, then the live ones; its room is joined again.
func TestRecoveryAcrossNodes(t *testing.T) {
	cl := newCluster(t, nil)
	a, s := cl.inNews(2)
	pid := s.pid
	a.c.CloseNow()

	cl.publish(1, "topic:news", 3, 5) // missed, published on the other node
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatalf("pid %q after a resume, want %q (socket.recovered would be false)", got, pid)
	}
	s = b.expectNews(s, 3, 4, 5)
	cl.publish(0, "topic:news", 6, 6) // live, from either node
	s = b.expectNews(s, 6)

	// Again, with nothing missed: still recovered, and still in the room.
	b.c.CloseNow()
	c := cl.nodes[0].dial(cl.nodes[0].header())
	if got := c.connectRecovering(`"token":"alice"`, s); got != pid {
		t.Fatalf("second resume: pid %q, want %q", got, pid)
	}
	cl.publish(1, "topic:news", 7, 7)
	c.expectNews(s, 7)
}

// A client that received no event since it joined resumes from the
// position its join was told, which the record keeps.
func TestRecoveryWithoutAnEvent(t *testing.T) {
	cl := newCluster(t, nil)
	cl.publish(0, "topic:quiet", 1, 3) // before the client: not missed
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	a.joinRoom("topic:quiet")
	if !cl.recordHas(pid, `"r":"topic:quiet","b":true,"o":3,"e":"`) {
		t.Fatalf("the record of the joined room has no position once the join is answered: %s", cl.spy.saved(pid))
	}
	a.c.CloseNow()
	cl.publish(1, "topic:quiet", 4, 5)
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, clientSession{pid: pid}); got != pid {
		t.Fatalf("pid %q, want %q", got, pid)
	}
	b.expectNews(clientSession{}, 4, 5)
}

// A room the server joined the socket to is resumed as the server joined
// it, from the position its join was told, before any event of it.
func TestRecoveryOfARoomTheServerJoined(t *testing.T) {
	cl := newCluster(t, func(o *hub.Options) {
		o.Rooms = room.AuthorizerFunc(func(context.Context, auth.Identity, string) error { return room.ErrForbidden })
	})
	cl.publish(0, "topic:staff", 1, 2) // before the join: not missed
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	a.send(`421["enter",{"room":"topic:staff"}]`)
	a.expect("431[]")
	if !cl.recordHas(pid, `"r":"topic:staff","o":2,"e":"`) {
		t.Fatal("the record has no position of the room the server joined, once the join returned")
	}
	a.c.CloseNow()
	cl.publish(1, "topic:staff", 3, 4)
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, clientSession{pid: pid}); got != pid {
		t.Fatalf("pid %q, want %q", got, pid)
	}
	b.expectNews(clientSession{}, 3, 4) // the policy refuses clients, not the server's join
}

// Every cause of a resume that does not recover gives a new pid
// (socket.recovered false) and replays nothing: the live events follow.
func TestRecoveryAllOrNothing(t *testing.T) {
	cases := []struct {
		name string
		// away runs while the client is away; it returns the session the
		// client comes back with and its token.
		away func(cl *cluster, s clientSession) (clientSession, string)
	}{
		{"trimmed", func(cl *cluster, s clientSession) (clientSession, string) {
			cl.publish(1, "topic:news", 10, 40) // more than the 20 kept
			return s, `"token":"alice"`
		}},
		{"another user", func(cl *cluster, s clientSession) (clientSession, string) {
			cl.publish(1, "topic:news", 10, 10)
			return s, `"token":"bob"`
		}},
		{"unknown pid", func(cl *cluster, s clientSession) (clientSession, string) {
			cl.publish(1, "topic:news", 10, 10)
			s.pid = "AAAAAAAAAAAAAAAAAAAAAA"
			return s, `"token":"alice"`
		}},
		{"an offset that is not ours", func(cl *cluster, s clientSession) (clientSession, string) {
			cl.publish(1, "topic:news", 10, 10)
			s.offset = "hello"
			return s, `"token":"alice"`
		}},
		{"stream erased", func(cl *cluster, s clientSession) (clientSession, string) {
			cl.publish(1, "topic:news", 10, 10)
			if err := cl.bus.Broker().Erase(context.Background(), "room:topic:news"); err != nil {
				cl.t.Fatal(err)
			}
			return s, `"token":"alice"`
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, nil)
			a, s := cl.inNews(1)
			pid := s.pid
			a.c.CloseNow()
			s, token := tc.away(cl, s)
			b := cl.nodes[1].dial(cl.nodes[1].header())
			got := b.connectRecovering(token, s)
			if got == pid {
				t.Fatal("recovered")
			}
			b.joinRoom("topic:news") // restored or not, the client joins
			cl.publish(0, "topic:news", 100, 100)
			b.expectNews(clientSession{}, 100) // the live event, and nothing missed before it
		})
	}
}

// A client that leaves the namespace ends its session: its pid resumes
// nothing.
func TestRecoveryEndsWithDisconnect(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.nodes[0].dial(cl.nodes[0].header())
	pid := a.connectRecovering(`"token":"alice"`, clientSession{})
	a.send("41")
	testutil.Eventually(t, wait, "the record deleted", func() bool { return cl.spy.isDeleted(pid) })
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, clientSession{pid: pid}); got == pid {
		t.Fatal("a session left with DISCONNECT was resumed")
	}
}

// A room the room policy no longer grants is not joined again, and the
// resume does not recover.
func TestRecoveryAsksTheRoomPolicyAgain(t *testing.T) {
	var deny atomic.Bool
	cl := newCluster(t, func(o *hub.Options) {
		o.Rooms = room.AuthorizerFunc(func(context.Context, auth.Identity, string) error {
			if deny.Load() {
				return room.ErrForbidden
			}
			return nil
		})
	})
	a, s := cl.inNews(1)
	pid := s.pid
	a.c.CloseNow()
	deny.Store(true)
	cl.publish(1, "topic:news", 2, 2)
	b := cl.nodes[1].dial(cl.nodes[1].header())
	if got := b.connectRecovering(`"token":"alice"`, s); got == pid {
		t.Fatal("recovered a room the policy refuses now")
	}
	cl.publish(0, "topic:news", 3, 3)
	b.send(`421["echo",{"text":"after"}]`)
	b.expect(`431[{"text":"after"}]`) // and no event of the room before it
}

// The record of a session is bounded by its TTL: the store is empty once
// MaxDisconnectionDuration passed after the connection ended.
func TestRecoveryRecordExpires(t *testing.T) {
	store := memory.NewSessions(memory.SessionsOptions{})
	defer store.Close()
	e := newEnv(t, func(o *Options) {
		o.Recovery = &Recovery{Store: store, MaxDisconnectionDuration: time.Second}
	}, nil)
	c := e.dial(e.header())
	c.connectRecovering(`"token":"alice"`, clientSession{})
	testutil.Eventually(t, wait, "the record saved", func() bool { return store.Len() == 1 })
	c.c.CloseNow()
	testutil.Eventually(t, 4*wait, "the session record to expire after MaxDisconnectionDuration", func() bool { return store.Len() == 0 })
}

func TestParseOffset(t *testing.T) {
	cases := []struct {
		in   string
		gen  uint64
		n    int
		ok   bool
		want string // the offset read, as fmt prints it
	}{
		{"g1-0", 1, 0, true, "{false 0 map[]}"},
		{"g1-5.0-a-ab12", 1, 1, true, "{false 5 map[0:{10 ab12}]}"},
		{"g1-z.0-a-ab12.2-1-x_", 1, 3, true, "{false 35 map[0:{10 ab12} 2:{1 x_}]}"},
		{"g2-1.0-a-ab12", 1, 1, true, "{true 0 map[]}"},
		{"g1", 1, 0, false, ""},
		{"g-1", 1, 0, false, ""},
		{"g1-", 1, 0, false, ""},
		{"g1-1.1-a-ab12", 1, 1, false, ""},
		{"g1-1.0-a-", 1, 1, false, ""},
		{"g1-1.0-a-a.b", 1, 1, false, ""},
		{"g1-1.0-a", 1, 1, false, ""},
		{"g1-1.0-zzzzzzzzzzzzzzzz-a", 1, 1, false, ""},
		{"hello", 1, 1, false, ""},
		{"", 1, 1, false, ""},
		{"g1-" + strings.Repeat("1", maxOffset), 1, 1, false, ""},
	}
	for _, tc := range cases {
		got, ok := parseOffset(tc.in, tc.gen, tc.n)
		if ok != tc.ok || ok && fmt.Sprint(got) != tc.want {
			t.Errorf("parseOffset(%q) = %v, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseOffset(f *testing.F) {
	f.Add("g1-2.0-a-ab12.2-1-x_", uint64(1), 3)
	f.Add("hello", uint64(0), 0)
	f.Fuzz(func(t *testing.T, s string, gen uint64, n int) {
		got, ok := parseOffset(s, gen, n)
		if !ok {
			return
		}
		if got.other && len(got.pos) > 0 {
			t.Fatalf("parseOffset(%q): positions of another generation", s)
		}
		for i, p := range got.pos {
			if i < 0 || i >= n || p.Epoch == "" || !plainEpoch(p.Epoch) {
				t.Fatalf("parseOffset(%q) gave slot %d %v", s, i, p)
			}
		}
	})
}

var _ adapter.SessionStore = (*memory.Sessions)(nil)
