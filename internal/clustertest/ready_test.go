package clustertest

import (
	"errors"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/internal/redistest"
)

// TestReadyStaysReadyAfterRedisRestart: once a node reports Ready after
// Redis came back, its subscriptions must stay up, or broadcasts
// published in the next moments are lost although the readiness probe
// said the node was fine.
//
// adapter/redis used to break this: markReady sends the first probe through the
// command client, whose pooled connection is still the dead one, so the
// PUBLISH fails (EOF); probeTick then finds the probe outstanding, on the
// very next tick (it does not wait for the probe to be an interval old),
// and recycles the healthy pub/sub connection: a second outage of about a
// backoff, Stats.Resubscribes 2 for one restart. A node that publishes
// nothing itself hits it nearly every time.
func TestReadyStaysReadyAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	const interval = 200 * time.Millisecond
	opts := redis.Options{Addrs: []string{srv.Addr()}, PublishTimeout: 300 * time.Millisecond, ProbeInterval: interval}
	quiet := startNode(t, "quiet", opts, nil)
	connect(t, quiet.srv.URL, "quiet", identity{user: "x"}, "room:r0")

	srv.Kill()
	eventually(t, "the outage is reported", func() error {
		if quiet.hub.Ready(t.Context()) == nil {
			return errors.New("still ready")
		}
		return nil
	})
	srv.Restart()
	eventually(t, "ready again", func() error { return quiet.hub.Ready(t.Context()) })
	deadline := time.Now().Add(3 * interval)
	for time.Now().Before(deadline) {
		if err := quiet.hub.Ready(t.Context()); err != nil {
			t.Fatalf("Ready turned nil after the restart, then failed again: %v (broker stats %+v)", err, quiet.broker.Stats())
		}
		time.Sleep(5 * time.Millisecond) // poll interval; the deadline bounds it
	}
	if st := quiet.broker.Stats(); st.Resubscribes != 1 {
		t.Fatalf("one restart, %d resubscriptions", st.Resubscribes)
	}
}
