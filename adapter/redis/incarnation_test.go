package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/brokertest"
	"github.com/wsgate/wsgate/internal/redistest"
)

// publishSoon publishes, retrying while Redis is reported unavailable (each
// of rueidis' connections fails once after a restart).
func publishSoon(t *testing.T, b *Broker, topic, payload string) adapter.Position {
	t.Helper()
	var pos adapter.Position
	eventually(t, "a publish", func() error {
		var err error
		pos, err = b.Publish(context.Background(), topic, []byte(payload), stream)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Publish: %v", err)
		}
		return err
	})
	return pos
}

// A server that restarts from a copy older than its last writes (a
// persistence file that missed them, a replica that lagged) holds positions
// that went back: the next publish must start a new epoch rather than hand
// out offsets clients already saw.
func TestStreamsEpochAfterARestartFromAnOlderCopy(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}})
	for i := 1; i <= 5; i++ {
		brokertest.Publish(t, b, "room:e", fmt.Sprint(i), stream)
	}
	if _, err := srv.Do("SAVE"); err != nil {
		t.Fatal(err)
	}
	var seen adapter.Position
	for i := 6; i <= 8; i++ {
		seen = brokertest.Publish(t, b, "room:e", fmt.Sprint(i), stream)
	}
	srv.Restart() // loads the snapshot taken at offset 5
	if n, _ := srv.Do("HGET", "{"+b.opts.Prefix+"room:e}:m", "o"); n != "5" {
		t.Fatalf("the restarted server holds offset %q, want the snapshot's 5", n)
	}
	next := publishSoon(t, b, "room:e", "after")
	if next.Epoch == seen.Epoch {
		t.Fatalf("after a restart from an older copy the publish got %+v, in the epoch of %+v already seen", next, seen)
	}
	if next.Offset != 1 {
		t.Fatalf("first publish of the new epoch at %+v, want offset 1", next)
	}
	res := historySoon(t, b, "room:e", adapter.HistoryQuery{Since: adapter.Position{Offset: 5, Epoch: seen.Epoch}, Stream: brokertest.Stream})
	brokertest.Incomplete(t, res, next)
}

// The run_id check does not rotate epochs for nothing: a server that keeps
// running (its scripts flushed, or other nodes joining) keeps them.
func TestStreamsEpochKeptByTheSameServer(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := node(t, Options{Addrs: []string{srv.Addr()}})
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}})
	first := brokertest.Publish(t, a, "room:k", "1", stream)
	if p := brokertest.Publish(t, b, "room:k", "2", stream); p != (adapter.Position{Offset: 2, Epoch: first.Epoch}) {
		t.Fatalf("another node's publish at %+v, want offset 2 of %s", p, first.Epoch)
	}
	if _, err := srv.Do("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	for i, n := range []*Broker{a, b} {
		if p := brokertest.Publish(t, n, "room:k", "x", stream); p != (adapter.Position{Offset: uint64(3 + i), Epoch: first.Epoch}) {
			t.Fatalf("publish after SCRIPT FLUSH at %+v, want offset %d of %s", p, 3+i, first.Epoch)
		}
	}
	// Each node loaded its own copy of the script, once more after the flush.
	if n := cachedScripts(t, srv); n != 2 {
		t.Fatalf("%d scripts cached, want one per node", n)
	}
}

func cachedScripts(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	info, err := srv.Do("INFO", "memory")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "number_of_cached_scripts:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no number_of_cached_scripts in INFO memory")
	return 0
}

// Under a publish load across a restart of a Redis with an append-only
// file (appendfsync everysec), no two publishes get the same offset in the
// same epoch.
func TestStreamsOffsetsNeverRepeatAcrossARestart(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "everysec"))
	const publishers, topics = 3, 4
	nodes := make([]*Broker, publishers)
	for i := range nodes {
		nodes[i], _ = node(t, Options{Addrs: []string{srv.Addr()}, PublishTimeout: 500 * time.Millisecond})
	}
	type assigned struct {
		topic string
		pos   adapter.Position
	}
	var mu sync.Mutex
	owner := map[assigned]string{} // who got each position
	restarted := make(chan struct{})
	var wg sync.WaitGroup
	for i, b := range nodes {
		wg.Go(func() {
			after := 0 // publishes that succeeded after the restart
			deadline := time.Now().Add(30 * time.Second)
			for n := 0; time.Now().Before(deadline) && after < 200; n++ {
				topic := fmt.Sprint("room:r", n%topics)
				payload := fmt.Sprint(i, "-", n)
				pos, err := b.Publish(context.Background(), topic, []byte(payload), stream)
				if err != nil {
					continue // the outage
				}
				select {
				case <-restarted:
					after++
				default:
				}
				mu.Lock()
				if prev, ok := owner[assigned{topic, pos}]; ok {
					t.Errorf("%s at %+v given to %s and to %s", topic, pos, prev, payload)
				}
				owner[assigned{topic, pos}] = payload
				mu.Unlock()
			}
		})
	}
	testutilWait(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(owner) >= 300
	})
	srv.Restart()
	close(restarted)
	wg.Wait()
	epochs := map[string]bool{}
	for a := range owner {
		epochs[a.pos.Epoch] = true
	}
	if len(epochs) < 2*topics {
		t.Fatalf("%d epochs over %d topics: the restart did not start new ones", len(epochs), topics)
	}
}

func testutilWait(t *testing.T, cond func() bool) {
	t.Helper()
	eventually(t, "the publishers to get going", func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

// In a cluster each master runs the node's copy it loaded, whatever the
// slots a node publishes to: one copy per node and master, not per slot.
func TestStreamsClusterLoadsOneCopyPerMaster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	b, _ := node(t, Options{Addrs: c.Addrs(), Cluster: true})
	first := map[string]adapter.Position{}
	for i := range 200 {
		topic := fmt.Sprint("room:c", i)
		first[topic] = brokertest.Publish(t, b, topic, "1", stream)
	}
	for topic, p := range first {
		if q := brokertest.Publish(t, b, topic, "2", stream); q != (adapter.Position{Offset: 2, Epoch: p.Epoch}) {
			t.Fatalf("%s: second publish at %+v after %+v", topic, q, p)
		}
	}
	for _, m := range c.Masters() {
		if n := cachedScripts(t, m); n != 1 {
			t.Errorf("master %s caches %d scripts, want 1", m.Addr(), n)
		}
	}
}
