package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/internal/redistest"
)

// fanout counts, across many connections, the frames of one benchmark
// event. A phase expects a number of frames; done closes when the last
// one arrives.
type fanout struct {
	phase atomic.Pointer[phase]
}

type phase struct {
	want int64
	got  atomic.Int64
	done chan struct{}
}

func (f *fanout) expect(n int64) *phase {
	p := &phase{want: n, done: make(chan struct{})}
	f.phase.Store(p)
	return p
}

func (f *fanout) received() {
	p := f.phase.Load()
	if p != nil && p.got.Add(1) == p.want {
		close(p.done)
	}
}

// benchEvent marks the frames fanout counts; the check is a substring
// match, cheap enough not to be what is measured.
var benchEvent = []byte(`"event":"bench"`)

// openBench opens n connections to url, each in room:bench, with as many
// distinct users, and counts their bench frames in f. It returns a
// function that closes them all.
func openBench(t *testing.T, url string, n int, f *fanout) (closeAll func()) {
	t.Helper()
	const workers = 16
	var (
		mu    sync.Mutex // guards conns and first
		conns []*websocket.Conn
		first error
		wg    sync.WaitGroup
		next  atomic.Int64
		ended sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				ws, err := openBenchConn(t, url, "bench-"+strconv.FormatInt(i, 10))
				mu.Lock()
				if err != nil {
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
				conns = append(conns, ws)
				mu.Unlock()
				ended.Add(1)
				go func() {
					defer ended.Done()
					for {
						_, b, err := ws.Read(context.Background())
						if err != nil {
							return
						}
						if bytes.Contains(b, benchEvent) {
							f.received()
						}
					}
				}()
			}
		}()
	}
	wg.Wait()
	closeAll = func() {
		for _, ws := range conns {
			ws.CloseNow()
		}
		ended.Wait()
	}
	if first != nil {
		closeAll()
		t.Fatalf("opening %d connections to %s: %v", n, url, first)
	}
	return closeAll
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// openBenchConn connects as user, reads the welcome, joins room:bench and
// reads the ack.
func openBenchConn(t *testing.T, url, user string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := dial(ctx, url, token(t, identity{user: user}))
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, describe(resp))
	}
	if _, _, err := ws.Read(ctx); err != nil { // welcome
		ws.CloseNow()
		return nil, err
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"room:bench","id":1}`)); err != nil {
		ws.CloseNow()
		return nil, err
	}
	if _, b, err := ws.Read(ctx); err != nil || !bytes.Contains(b, []byte(`"ack"`)) {
		ws.CloseNow()
		return nil, fmt.Errorf("join: %q %v", b, err)
	}
	return ws, nil
}

// measure publishes k broadcasts to room:bench through pub and waits until
// every one of conns connections received each. It returns the PUBLISH
// commands Redis counted meanwhile and the time to the last delivery.
func measure(t *testing.T, srv *redistest.Server, pub *child, f *fanout, conns, k int) (publishes int, elapsed time.Duration) {
	t.Helper()
	before := commandCalls(t, srv, "publish")
	p := f.expect(int64(conns * k))
	start := time.Now()
	pub.broadcast(t, "room:bench", "bench", k)
	select {
	case <-p.done:
	case <-time.After(2 * waitFor):
		t.Fatalf("%d of %d deliveries within %s", p.got.Load(), p.want, 2*waitFor)
	}
	elapsed = time.Since(start)
	publishes = commandCalls(t, srv, "publish") - before
	return publishes, elapsed
}

// TestCrossNodeBroadcastCost measures what a broadcast costs across nodes:
// Redis commands (INFO commandstats: exactly one PUBLISH per broadcast,
// whatever the number of recipients and nodes) and the delivery rate of a
// broadcast to 2×N connections on two nodes against 2N on one node. The
// nodes run in child processes, as they would in production, and the
// clients here: WSGATE_FANOUT_CONNS=5000 stays within 20,000 descriptors
// per process. Without it N is 500 (and 20 broadcasts), to keep CI quick.
func TestCrossNodeBroadcastCost(t *testing.T) {
	perNode := mustEnvInt(t, "WSGATE_FANOUT_CONNS", 500)
	k := mustEnvInt(t, "WSGATE_FANOUT_BROADCASTS", 10)
	rounds := mustEnvInt(t, "WSGATE_FANOUT_ROUNDS", 3)
	srv := redistest.Start(t)
	// No liveness probe within the test, so that every PUBLISH counted is
	// a broadcast.
	env := []string{envRedis + "=" + srv.Addr(), envProbe + "=10m"}

	type result struct {
		label      string
		recipients int
		elapsed    []time.Duration // one per round, sorted
	}
	var results []result
	run := func(label string, nodes, per int) {
		children := make([]*child, nodes)
		for i := range children {
			children[i] = startChild(t, env...)
		}
		f := &fanout{}
		var closers []func()
		for _, c := range children {
			closers = append(closers, openBench(t, c.url, per, f))
		}
		total := nodes * per
		// One broadcast first: its PUBLISH count is the cost, and it warms
		// every path up.
		if n, _ := measure(t, srv, children[0], f, total, 1); n != 1 {
			t.Errorf("%s: one broadcast to %d connections cost %d PUBLISH, want 1", label, total, n)
		}
		r := result{label: label, recipients: total}
		for range rounds {
			n, elapsed := measure(t, srv, children[0], f, total, k)
			if n != k {
				t.Errorf("%s: %d broadcasts cost %d PUBLISH, want %d", label, k, n, k)
			}
			r.elapsed = append(r.elapsed, elapsed)
		}
		slices.Sort(r.elapsed)
		results = append(results, r)
		for _, closeAll := range closers {
			closeAll()
		}
		for _, c := range children {
			c.stop()
		}
	}
	run(fmt.Sprintf("2 nodes × %d", perNode), 2, perNode)
	run(fmt.Sprintf("1 node × %d", 2*perNode), 1, 2*perNode)
	t.Logf("one PUBLISH per broadcast; %d rounds of %d back-to-back broadcasts to room:bench, published by the first node:", rounds, k)
	for _, r := range results {
		rate := func(d time.Duration) float64 { return float64(r.recipients*k) / d.Seconds() }
		median := r.elapsed[len(r.elapsed)/2]
		t.Logf("  %-15s %6d recipients: median %8.0f deliveries/s (%.1f ms per broadcast), best %8.0f/s",
			r.label, r.recipients, rate(median), float64(median.Microseconds())/1000/float64(k), rate(r.elapsed[0]))
	}
}
