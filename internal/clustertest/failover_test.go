package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/redistest"
)

// seqLoad publishes numbered broadcasts, alternating between rooms, every
// interval until halted or until maxPublishes, and records each outcome.
type seqLoad struct {
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex // guards sent
	sent []sentMsg  // index i is message i
}

type sentMsg struct {
	room string
	at   time.Time
	err  error
}

func startSeqLoad(h *hub.Hub, rooms []string) *seqLoad {
	l := &seqLoad{stop: make(chan struct{}), done: make(chan struct{})}
	tick := time.NewTicker(loadInterval)
	go func() {
		defer close(l.done)
		defer tick.Stop()
		for i := range maxPublishes {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			r := rooms[i%len(rooms)]
			at := time.Now()
			err := h.Broadcast(context.Background(), r, "load", i)
			l.mu.Lock()
			l.sent = append(l.sent, sentMsg{room: r, at: at, err: err})
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *seqLoad) halt() []sentMsg {
	close(l.stop)
	<-l.done
	return l.snapshot()
}

func (l *seqLoad) snapshot() []sentMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sentMsg(nil), l.sent...)
}

// loadSeen returns the indexes of the load messages c received.
func loadSeen(t *testing.T, c *client) map[int]bool {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[int]bool{}
	for _, f := range c.frames {
		if f.Type != "event" || f.Event != "load" {
			continue
		}
		var i int
		if err := json.Unmarshal(f.Data, &i); err != nil {
			t.Fatalf("load data %s: %v", f.Data, err)
		}
		seen[i] = true
	}
	return seen
}

// clusterNode starts a hub whose broker, per-user limit and presence all
// use the cluster.
func clusterNode(t *testing.T, name string, addrs []string, ro redis.Options) *node {
	t.Helper()
	const timeout = 300 * time.Millisecond
	limiter, err := redis.NewLimiter(redis.LimiterOptions{Addrs: addrs, Cluster: true, PerUser: 1,
		LeaseTTL: 3 * time.Second, RefreshInterval: 500 * time.Millisecond, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { limiter.Close() })
	presence, err := redis.NewPresence(redis.PresenceOptions{Addrs: addrs, Cluster: true,
		TTL: 3 * time.Second, RefreshInterval: 500 * time.Millisecond, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { presence.Close() })
	return startNode(t, name, ro, func(o *hub.Options) { o.Admit, o.Presence = limiter.Admit, presence })
}

// TestRedisClusterFailover kills a master of a three-master cluster with a
// replica each, by PID, under a steady publish load. The replica takes
// over; the test checks what operators rely on: readiness turns false and
// then true again, delivery resumes in every room, the per-user limit and
// presence whose keys lived on the lost master work again (rewritten by
// their refresh when Redis lost them), and it logs how many broadcasts
// the gap cost.
func TestRedisClusterFailover(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	victim := cl.Masters()[0]
	replica := cl.ReplicaOf(victim)
	if replica == nil {
		t.Fatalf("master %s has no replica", victim.Addr())
	}
	owner := slotOwners(t, cl)
	onVictim := func(key string) bool { return owner(keySlot(t, replica, key)) == victim.Addr() }
	find := func(what string, name func(int) string, key func(string) string, want bool) string {
		for i := range 1000 {
			if n := name(i); onVictim(key(n)) == want {
				return n
			}
		}
		t.Fatalf("no %s among 1000 names", what)
		return ""
	}
	roomName := func(i int) string { return "room:f" + strconv.Itoa(i) }
	userName := func(i int) string { return "user" + strconv.Itoa(i) }
	leaseKey := func(u string) string { return redis.DefaultPrefix + "lease:{" + u + "}" }
	presenceKey := func(r string) string { return redis.DefaultPrefix + "presence:{" + r + "}" }
	lostRoom := find("room on the victim", roomName, channelOf, true)
	keptRoom := find("room elsewhere", roomName, channelOf, false)
	presenceRoom := find("presence on the victim", roomName, presenceKey, true)
	leaseUser := find("lease on the victim", userName, leaseKey, true)

	ro := redis.Options{Addrs: cl.Addrs(), Cluster: true, PublishTimeout: 300 * time.Millisecond, ProbeInterval: 200 * time.Millisecond}
	nodes := []*node{clusterNode(t, "a", cl.Addrs(), ro), clusterNode(t, "b", cl.Addrs(), ro)}
	a, b := nodes[0], nodes[1]
	members := map[string][]*client{}
	for i, r := range []string{lostRoom, keptRoom} {
		for _, n := range nodes {
			id := identity{user: fmt.Sprintf("m%d%s", i, n.name)}
			members[r] = append(members[r], connect(t, n.srv.URL, n.name, id, r))
		}
	}
	connect(t, a.srv.URL, "a", identity{user: leaseUser}, presenceRoom)
	connect(t, b.srv.URL, "b", identity{user: "watcher"}, presenceRoom)
	wantPresence := leaseUser + ",watcher"
	eventually(t, "presence before the failover", func() error {
		if got := presence(t, b, presenceRoom); got != wantPresence {
			return fmt.Errorf("presence %q", got)
		}
		return nil
	})

	l := startSeqLoad(a.hub, []string{lostRoom, keptRoom})
	halted := false
	defer func() {
		if !halted {
			l.halt()
		}
	}()
	eventually(t, "the load reaches every member", func() error {
		for _, cs := range members {
			for _, c := range cs {
				if n := c.count(isEvent("load")); n < 10 {
					return fmt.Errorf("%s received %d", c, n)
				}
			}
		}
		return nil
	})

	killed := time.Now()
	victim.Kill()
	for _, n := range nodes {
		eventually(t, n.name+" reports the lost master", func() error {
			if n.hub.Ready(t.Context()) == nil {
				return errors.New("Ready is nil")
			}
			return nil
		})
	}
	eventually(t, "the replica takes over", func() error {
		if role, err := redistest.Role(replica); err != nil || role != "master" {
			return fmt.Errorf("role %q, %v", role, err)
		}
		return nil
	})
	promoted := time.Now()
	for _, n := range nodes {
		eventually(t, n.name+" is ready again", func() error { return n.hub.Ready(t.Context()) })
	}
	ready := time.Now()
	resumeFrom := len(l.snapshot())
	eventually(t, "delivery resumes in every room", func() error {
		for r, cs := range members {
			for _, c := range cs {
				if !hasLoadFrom(t, c, resumeFrom) {
					return fmt.Errorf("%s in %s has nothing published after readiness", c, r)
				}
			}
		}
		return nil
	})
	sent := l.halt()
	halted = true

	// Everything published has arrived once a marker, published after the
	// load and on each room's own channel, has.
	for r, cs := range members {
		if err := a.hub.Broadcast(t.Context(), r, "marker", nil); err != nil {
			t.Fatalf("marker to %s: %v", r, err)
		}
		for _, c := range cs {
			c.waitSeen("the marker", isEvent("marker"))
		}
	}
	for _, r := range []string{lostRoom, keptRoom} {
		logLoss(t, r, r == lostRoom, sent, members[r], killed)
	}
	t.Logf("failover: replica promoted %s after the kill, both nodes ready %s after the kill",
		promoted.Sub(killed).Round(time.Millisecond), ready.Sub(killed).Round(time.Millisecond))

	// The limit and presence keys of the lost master live on its replica
	// now. Even if Redis had lost them (replication is asynchronous), the
	// nodes' refreshes write them again: delete them and watch.
	for _, key := range []string{leaseKey(leaseUser), presenceKey(presenceRoom)} {
		if _, err := replica.Do("DEL", key); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the lease of "+leaseUser+" holds again after the failover", func() error {
		status, code, _, err := refusal(t, b.srv.URL, leaseUser)
		if err != nil || status != http.StatusTooManyRequests {
			return fmt.Errorf("second connection: %d %s %v", status, code, err)
		}
		return nil
	})
	// The first calls may still go to the dead master, until the client
	// reloads its slot map.
	eventually(t, "presence on the promoted replica", func() error {
		if got, err := presenceOf(b, presenceRoom); err != nil || got != wantPresence {
			return fmt.Errorf("presence %q, %v", got, err)
		}
		return nil
	})
	// A user whose lease lives on the failed-over slots is admitted.
	fresh := find("another lease on the victim", func(i int) string { return "late" + strconv.Itoa(i) }, leaseKey, true)
	connect(t, b.srv.URL, "b", identity{user: fresh}, presenceRoom)
	eventually(t, "presence of a user who joined after the failover", func() error {
		if got, err := presenceOf(a, presenceRoom); err != nil || got != fresh+","+wantPresence {
			return fmt.Errorf("presence %q, %v; want %q", got, err, fresh+","+wantPresence)
		}
		return nil
	})
}

// presenceOf returns the users n's hub sees in room, sorted and joined.
func presenceOf(n *node, room string) (string, error) {
	users, err := n.hub.Presence(context.Background(), room)
	slices.Sort(users)
	return strings.Join(users, ","), err
}

// hasLoadFrom reports whether c received a load message numbered from or
// later.
func hasLoadFrom(t *testing.T, c *client, from int) bool {
	for i := range loadSeen(t, c) {
		if i >= from {
			return true
		}
	}
	return false
}

// logLoss logs, for room, what the gap cost: failed publishes, and
// accepted publishes that a member never received.
func logLoss(t *testing.T, room string, onLost bool, sent []sentMsg, members []*client, killed time.Time) {
	t.Helper()
	var published, failed int
	var firstFail, lastFail time.Time
	errs := map[string]int{}
	for _, m := range sent {
		if m.room != room {
			continue
		}
		published++
		if m.err != nil {
			failed++
			errs[m.err.Error()]++
			if firstFail.IsZero() {
				firstFail = m.at
			}
			lastFail = m.at
		}
	}
	for e, n := range errs {
		t.Logf("room %s: %d× %s", room, n, e)
	}
	for _, c := range members {
		seen := loadSeen(t, c)
		lost := 0
		for i, m := range sent {
			if m.room == room && m.err == nil && !seen[i] {
				lost++
			}
		}
		where := "on another master"
		if onLost {
			where = "on the killed master"
		}
		failures := "none failed to publish"
		if failed > 0 {
			failures = fmt.Sprintf("%d failed to publish (from %s after the kill, over %s)", failed,
				firstFail.Sub(killed).Round(time.Millisecond), lastFail.Sub(firstFail).Round(time.Millisecond))
		}
		t.Logf("room %s (%s), member %s: %d broadcasts, %s, %d accepted but never delivered",
			room, where, c, published, failures, lost)
	}
}
