package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wsredis "github.com/wsgate/wsgate/adapter/redis"
	wsclient "github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
)

// historyPolicies is the history every node keeps in the deploy tests:
// the shared room's kind and the user rooms.
var historyPolicies = map[string]hub.HistoryPolicy{
	"room": {Size: 5000, TTL: 5 * time.Minute},
	"user": {Size: 500, TTL: 5 * time.Minute},
}

// withHistory sets the history of the deploy tests' nodes, and handler
// deadlines (which bound a recovery) long enough for a thousand clients
// recovering at once on a loaded two-core machine under the race detector.
func withHistory(o *hub.Options) {
	o.History = historyPolicies
	o.HandlerTimeout = 15 * time.Second
}

// envHistory makes a helper node keep historyPolicies.
const envHistory = "WSGATE_CLUSTERTEST_HISTORY"

const sharedRoom = "room:shared"

// TestRollingDeployLosesNothing is a rolling deploy under load: two nodes
// on Redis, clients in a shared room and in their user room, a publisher
// sending to both without pause. Node A goes away (shut down gracefully,
// or killed), its clients reconnect to node B and recover: every client's
// sequence of every room is complete, in order, without duplicates.
//
//	WSGATE_DEPLOY_CLIENTS=1000 (default) clients, all on node A at first.
func TestRollingDeployLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill bool
	}{{"graceful_shutdown", false}, {"sigkill", true}} {
		t.Run(tc.name, func(t *testing.T) { rollingDeploy(t, tc.kill) })
	}
}

func rollingDeploy(t *testing.T, kill bool) {
	srv := redistest.Start(t)
	ro := wsredis.Options{Addrs: []string{srv.Addr()}, ProbeInterval: time.Second}
	withHistory := func(o *hub.Options) { withHistory(o) }
	b := startNode(t, "b", ro, withHistory)
	var aURL string
	var stopA func()
	if kill {
		a := startChild(t, envRedis+"="+srv.Addr(), envProbe+"=1s", envHistory+"=1")
		aURL, stopA = a.url, a.kill
	} else {
		a := startNode(t, "a", ro, withHistory)
		aURL, stopA = a.srv.URL, a.stop
	}
	var lb balancer
	lb.route(aURL)
	lb.tr = newBalancerTransport(&lb)

	n := mustEnvInt(t, "WSGATE_DEPLOY_CLIENTS", 1000)
	checks := make([]*sequence, n)
	clients := make([]*wsclient.Client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			checks[i] = &sequence{user: fmt.Sprint("u", i), last: map[string]int{}}
			clients[i] = lb.dial(t, checks[i])
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	p := startPublisher(t, b.hub, n)
	defer p.stop()
	p.waitAllSeen(t, checks, 3)

	lb.route(b.srv.URL)
	stopA()
	slowly(t, "every client reconnected to node B and recovered", func() error {
		for i, c := range clients {
			if checks[i].recovered() < 2 {
				return fmt.Errorf("%s: %d recoveries, connection %q, %v", checks[i].user, checks[i].recovered(), c.ConnID(), checks[i].failure())
			}
		}
		return nil
	})
	p.waitAllSeen(t, checks, 25) // half a second more of the load on node B
	roomN, users := p.stop()
	slowly(t, "every client to have every message", func() error {
		for _, s := range checks {
			if err := s.complete(roomN, users[s.user]); err != nil {
				return err
			}
		}
		return nil
	})
	for _, s := range checks {
		if err := s.failure(); err != nil {
			t.Fatal(err)
		}
	}
	missed := 0
	for _, s := range checks {
		s.mu.Lock()
		missed += s.missed
		s.mu.Unlock()
	}
	if missed == 0 {
		t.Fatal("no client missed anything: the test did not test recovery")
	}
	t.Logf("%d clients, %d messages to the shared room, %d to users; %d delivered by recoveries after the loss of node A",
		n, roomN, p.userTotal(), missed)
}

// balancer sends new connections to one node, like a load balancer
// draining another.
type balancer struct {
	addr atomic.Pointer[string]
	tr   *http.Transport
}

func (lb *balancer) route(url string) {
	host := strings.TrimPrefix(url, "http://")
	lb.addr.Store(&host)
}

// dial connects a client for s's user through the balancer and joins the
// shared room.
func (lb *balancer) dial(t *testing.T, s *sequence) *wsclient.Client {
	tok := token(t, identity{user: s.user})
	opts := wsclient.Options{
		URL:        "ws://balancer/ws",
		Origin:     "http://127.0.0.1",
		Token:      func(context.Context) (string, error) { return tok, nil },
		HTTPClient: &http.Client{Transport: lb.tr},
		Backoff:    wsclient.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second},
		AckTimeout: time.Minute,
		EventQueue: 4096,
		OnEvent:    s.event,
		OnRecovery: s.recovery,
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := wsclient.Dial(ctx, opts)
	if err != nil {
		t.Errorf("%s: dial: %v", s.user, err)
		return nil
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Join(ctx, sharedRoom); err != nil {
		t.Errorf("%s: join: %v", s.user, err)
	}
	return c
}

// sequence checks one client's events: the publisher numbers the messages
// of every room 1, 2, 3…, so each room's must come exactly in that order.
type sequence struct {
	user string

	mu     sync.Mutex // guards the fields below
	last   map[string]int
	errs   []string
	recs   int // recoveries that recovered
	missed int // events they delivered
	failed []wsclient.Recovery
}

func (s *sequence) event(ev wsclient.Event) {
	var d struct{ N int }
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := s.last[ev.Room] + 1; d.N != want && len(s.errs) < 10 {
		s.errs = append(s.errs, fmt.Sprintf("%s in %s: got %d at %+v, want %d", s.user, ev.Room, d.N, ev.Position, want))
	}
	s.last[ev.Room] = d.N
}

func (s *sequence) recovery(r wsclient.Recovery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Recovered {
		s.recs++
		s.missed += r.Missed
	} else {
		s.failed = append(s.failed, r)
	}
}

func (s *sequence) recovered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recs
}

func (s *sequence) seen(room string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[room]
}

func (s *sequence) complete(roomN, userN int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last[sharedRoom] != roomN || s.last["user:"+s.user] != userN {
		return fmt.Errorf("%s: shared room at %d of %d, user room at %d of %d", s.user, s.last[sharedRoom], roomN, s.last["user:"+s.user], userN)
	}
	return nil
}

func (s *sequence) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 || len(s.failed) > 0 {
		return fmt.Errorf("out of sequence %v; not recovered %+v", s.errs, s.failed)
	}
	return nil
}

// publisher sends, every tick, the next number to the shared room and to a
// rotating slice of the users, until stopped.
type publisher struct {
	done    chan struct{}
	stopped chan struct{}

	mu    sync.Mutex // guards the counts
	room  int
	users map[string]int
	total int
}

func startPublisher(t *testing.T, h *hub.Hub, clients int) *publisher {
	p := &publisher{done: make(chan struct{}), stopped: make(chan struct{}), users: map[string]int{}}
	const perTick = 50
	go func() {
		defer close(p.stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		next := 0
		for i := 0; i < 30000; i++ { // bounded: ten minutes
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			ctx := context.Background()
			p.mu.Lock()
			p.room++
			if err := h.Broadcast(ctx, sharedRoom, "n", map[string]int{"n": p.room}); err != nil {
				t.Errorf("broadcast: %v", err)
			}
			for range perTick {
				u := fmt.Sprint("u", next%clients)
				next++
				p.users[u]++
				p.total++
				if err := h.ToUser(ctx, u, "n", map[string]int{"n": p.users[u]}); err != nil {
					t.Errorf("to user: %v", err)
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// stop ends the publishing and returns the final counts.
func (p *publisher) stop() (room int, users map[string]int) {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.room, p.users
}

func (p *publisher) userTotal() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// waitAllSeen waits until the publisher sent more messages to the
// shared room and every client saw them.
func (p *publisher) waitAllSeen(t *testing.T, checks []*sequence, more int) {
	t.Helper()
	p.mu.Lock()
	target := p.room + more
	p.mu.Unlock()
	slowly(t, fmt.Sprintf("every client to see message %d of the shared room", target), func() error {
		for _, s := range checks {
			if got := s.seen(sharedRoom); got < target {
				return fmt.Errorf("%s at %d", s.user, got)
			}
		}
		return nil
	})
}

// slowly is eventually with room for a thousand clients reconnecting on a
// loaded two-core machine.
func slowly(t testing.TB, what string, cond func() error) {
	t.Helper()
	testutil.EventuallyNil(t, 90*time.Second, what, cond)
}

// newBalancerTransport dials the balancer's current node whatever the
// request's host.
func newBalancerTransport(lb *balancer) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, *lb.addr.Load())
		},
		MaxIdleConnsPerHost: -1,
	}
}
