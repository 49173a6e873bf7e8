package clustertest

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	wsredis "github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
)

// TestLiveGapIsRepaired: messages a node misses while its pub/sub
// connection to Redis is down (killed here with CLIENT KILL) are a gap in
// what its clients receive; the node repairs it from the room's history at
// the next message, and the clients see every message once, in order.
func TestLiveGapIsRepaired(t *testing.T) {
	srv := redistest.Start(t)
	ro := wsredis.Options{Addrs: []string{srv.Addr()}, ProbeInterval: time.Second}
	logs := &testutil.SyncBuffer{}
	b := startNode(t, "b", ro, func(o *hub.Options) {
		o.History = historyPolicies
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	a := startNode(t, "a", ro, func(o *hub.Options) { o.History = historyPolicies })
	var lb balancer
	lb.route(b.srv.URL)
	lb.tr = newBalancerTransport(&lb)
	const n = 20
	checks := make([]*sequence, n)
	for i := range checks {
		checks[i] = &sequence{user: fmt.Sprint("u", i), last: map[string]int{}}
		lb.dial(t, checks[i])
	}
	p := startPublisher(t, a.hub, n)
	defer p.stop()
	p.waitAllSeen(t, checks, 3)
	for range 3 {
		if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatal(err)
		}
		p.waitAllSeen(t, checks, 10)
	}
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
	if !strings.Contains(logs.String(), `"msg":"gap_repaired"`) {
		t.Fatalf("node b repaired no gap; its log:\n%s", logs.String())
	}
}
