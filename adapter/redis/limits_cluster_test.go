package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/internal/redistest"
)

// TestLimitsOnCluster runs the Limiter and Presence on a three-master Redis
// Cluster: every key carries its user or room as hash tag, so each script
// touches one slot, and the keys spread over the masters.
func TestLimitsOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	names := []string{"room{odd}", "a}b", "{x}"}
	for i := range 12 {
		names = append(names, "n"+strconv.Itoa(i))
	}

	// owners returns how many masters hold at least one of keys.
	owners := func(t *testing.T, keys []string) int {
		t.Helper()
		owned := map[string]bool{}
		for _, key := range keys {
			for _, s := range c.Servers() {
				if got, err := s.Do("EXISTS", key); err == nil && got == "1" {
					owned[s.Addr()] = true
				}
			}
		}
		return len(owned)
	}

	t.Run("limiter", func(t *testing.T) {
		o := LimiterOptions{Addrs: c.Addrs(), PerUser: 2, LeaseTTL: time.Second, RefreshInterval: 100 * time.Millisecond}
		a, b := newLimiter(t, o), newLimiter(t, o)
		var keys []string
		releases := map[string]func(){}
		for _, user := range names {
			admit(t, a, user)
			releases[user] = admit(t, a, user)
			if _, err := b.Admit(context.Background(), user); !errors.Is(err, guard.ErrUserLimit) {
				t.Fatalf("%s over the limit on b: %v", user, err)
			}
			keys = append(keys, "wsgate:lease:{"+user+"}")
		}
		if n := owners(t, keys); n < 2 {
			t.Fatalf("lease keys on %d masters, want them spread", n)
		}
		releases[names[0]]()
		eventually(t, "released slot free on b", func() error {
			_, err := b.Admit(context.Background(), names[0])
			return err
		})
		a.shutdown(false)
		crashed := time.Now()
		for _, user := range names[1:] {
			eventually(t, "crashed node's leases of "+user+" expire", func() error {
				_, err := b.Admit(context.Background(), user)
				return err
			})
		}
		if d := time.Since(crashed); d > o.LeaseTTL+time.Second {
			t.Fatalf("slots freed %s after the crash, LeaseTTL %s", d, o.LeaseTTL)
		}
	})

	t.Run("presence", func(t *testing.T) {
		o := PresenceOptions{Addrs: c.Addrs(), TTL: time.Second, RefreshInterval: 100 * time.Millisecond}
		a, b := newPresence(t, o), newPresence(t, o)
		var keys []string
		for i, room := range names {
			a.Add(room, "alice", "a"+strconv.Itoa(i))
			b.Add(room, "bob", "b"+strconv.Itoa(i))
			keys = append(keys, "wsgate:presence:{"+room+"}")
		}
		for _, room := range names {
			eventuallyUsers(t, a, room, "alice", "bob")
		}
		if n := owners(t, keys); n < 2 {
			t.Fatalf("presence keys on %d masters, want them spread", n)
		}
		for i, room := range names {
			b.Remove(room, "bob", "b"+strconv.Itoa(i))
		}
		for _, room := range names {
			eventuallyUsers(t, a, room, "alice")
		}
	})

	t.Run("throttle", func(t *testing.T) {
		o := ThrottleOptions{Addrs: c.Addrs(), Attempts: 2, Window: time.Minute}
		a, b := newThrottle(t, o), newThrottle(t, o)
		for _, key := range names {
			if okA, _ := allow(t, a, key); !okA {
				t.Fatalf("%s: first attempt refused", key)
			}
			if okB, _ := allow(t, b, key); !okB {
				t.Fatalf("%s: second attempt refused", key)
			}
			if ok, _ := allow(t, a, key); ok {
				t.Fatalf("%s: third attempt allowed with a burst of 2", key)
			}
		}
	})

	t.Run("shared_cluster_client", func(t *testing.T) {
		client := rawClient(t, c.Addrs()...)
		if _, err := NewLimiter(LimiterOptions{Client: client, Prefix: "{app}:"}); err == nil {
			t.Fatal("a brace in the prefix was accepted on a cluster client")
		}
		l := newLimiter(t, LimiterOptions{Client: client, Prefix: "app:", PerUser: 1})
		admit(t, l, "solo")
		_, err := l.Admit(context.Background(), "solo")
		if !errors.Is(err, guard.ErrUserLimit) {
			t.Fatal(fmt.Errorf("second Admit: %w", err))
		}
	})
}
