package redis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/protocol"
)

// newLimiter starts a Limiter that is closed at cleanup.
func newLimiter(t *testing.T, o LimiterOptions) *Limiter {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	l, err := NewLimiter(o)
	if err != nil {
		t.Fatalf("NewLimiter: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// admit takes a slot or fails the test.
func admit(t *testing.T, l *Limiter, user string) func() {
	t.Helper()
	release, err := l.Admit(context.Background(), user)
	if err != nil {
		t.Fatalf("Admit(%s): %v", user, err)
	}
	return release
}

// assertRefusal checks that err is a *protocol.Refusal with status and
// sentinel.
func assertRefusal(t *testing.T, err error, status int, code string, sentinel error) {
	t.Helper()
	var rej *protocol.Refusal
	if !errors.As(err, &rej) {
		t.Fatalf("err = %v (%T), want *protocol.Refusal", err, err)
	}
	if rej.Status != status || rej.Code != code || rej.RetryAfter <= 0 || !errors.Is(err, sentinel) {
		t.Fatalf("refusal = %+v, want status %d, code %s, a Retry-After, wrapping %v", rej, status, code, sentinel)
	}
}

// zcard returns the number of members of key.
func zcard(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	n, err := c.Do(context.Background(), c.B().Zcard().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatalf("ZCARD %s: %v", key, err)
	}
	return n
}

func TestLimiter(t *testing.T) {
	srv := redistest.Start(t)
	raw := rawClient(t, srv.Addr())
	fast := LimiterOptions{Addrs: []string{srv.Addr()}, PerUser: 2, LeaseTTL: time.Second, RefreshInterval: 100 * time.Millisecond}

	tests := []struct {
		name string
		run  func(t *testing.T, a, b *Limiter)
	}{
		{"user_at_the_limit_on_one_node_is_refused_on_another", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "ann")
			admit(t, a, "ann")
			_, err := b.Admit(context.Background(), "ann")
			assertRefusal(t, err, http.StatusTooManyRequests, protocol.CodeConnectionLimit, guard.ErrUserLimit)
			_, err = a.Admit(context.Background(), "ann")
			assertRefusal(t, err, http.StatusTooManyRequests, protocol.CodeConnectionLimit, guard.ErrUserLimit)
			if got := b.Stats().Refused; got != 1 {
				t.Fatalf("b refused %d, want 1", got)
			}
		}},
		{"other_users_are_unaffected", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "bea")
			admit(t, b, "bea")
			admit(t, b, "bob")
		}},
		{"release_frees_the_slot_for_any_node", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "cid")
			release := admit(t, b, "cid")
			release()
			eventually(t, "slot freed on a", func() error {
				r, err := a.Admit(context.Background(), "cid")
				if err == nil {
					t.Cleanup(r)
				}
				return err
			})
		}},
		{"release_twice_frees_one_slot", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "dee")
			release := admit(t, a, "dee")
			release()
			release()
			eventually(t, "one slot freed", func() error {
				_, err := b.Admit(context.Background(), "dee")
				return err
			})
			_, err := b.Admit(context.Background(), "dee")
			assertRefusal(t, err, http.StatusTooManyRequests, protocol.CodeConnectionLimit, guard.ErrUserLimit)
		}},
		{"concurrent_admits_on_two_nodes_never_exceed_the_limit", func(t *testing.T, a, b *Limiter) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			admitted := 0
			for i := range 40 {
				wg.Go(func() {
					l := a
					if i%2 == 1 {
						l = b
					}
					if _, err := l.Admit(context.Background(), "eve"); err == nil {
						mu.Lock()
						admitted++
						mu.Unlock()
					} else if !errors.Is(err, guard.ErrUserLimit) {
						t.Errorf("Admit: %v", err)
					}
				})
			}
			wg.Wait()
			if admitted != 2 {
				t.Fatalf("%d admitted, want 2", admitted)
			}
		}},
		{"leases_outlive_the_TTL_while_the_node_refreshes", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "fay")
			admit(t, a, "fay")
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if _, err := b.Admit(context.Background(), "fay"); !errors.Is(err, guard.ErrUserLimit) {
					t.Fatalf("Admit on b after a refreshed: %v, want the user limit", err)
				}
			}
		}},
		{"a_crashed_node_frees_its_slots_within_the_TTL", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "gus")
			admit(t, a, "gus")
			a.shutdown(false) // no release, no cleanup: a crash
			crashed := time.Now()
			if _, err := b.Admit(context.Background(), "gus"); !errors.Is(err, guard.ErrUserLimit) {
				t.Fatalf("Admit right after the crash: %v, want the user limit", err)
			}
			eventually(t, "crashed node's leases to expire", func() error {
				_, err := b.Admit(context.Background(), "gus")
				return err
			})
			if d := time.Since(crashed); d > fast.LeaseTTL+500*time.Millisecond {
				t.Fatalf("slots freed %s after the crash, LeaseTTL %s", d, fast.LeaseTTL)
			}
		}},
		{"close_frees_the_slots_at_once", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "hal")
			admit(t, a, "hal")
			a.Close()
			admit(t, b, "hal")
			admit(t, b, "hal")
			if _, err := a.Admit(context.Background(), "hal"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Admit after Close: %v, want ErrClosed", err)
			}
		}},
		{"leases_lost_by_redis_are_written_again", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "ivy")
			key := "wsgate:lease:{ivy}"
			if err := raw.Do(context.Background(), raw.B().Del().Key(key).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "lease restored and counted", func() error {
				if n, restored := zcard(t, raw, key), a.Stats().Restored; n != 1 || restored != 1 {
					return fmt.Errorf("%d leases, Stats.Restored %d", n, restored)
				}
				return nil
			})
		}},
		{"lease_key_expires_with_its_leases", func(t *testing.T, a, b *Limiter) {
			admit(t, a, "jo")
			pttl, err := raw.Do(context.Background(), raw.B().Pttl().Key("wsgate:lease:{jo}").Build()).AsInt64()
			if err != nil || pttl <= 0 || pttl > fast.LeaseTTL.Milliseconds() {
				t.Fatalf("PTTL = %d, %v; want within (0, %d]", pttl, err, fast.LeaseTTL.Milliseconds())
			}
		}},
		{"bad_calls_are_refused", func(t *testing.T, a, b *Limiter) {
			if _, err := a.Admit(context.Background(), ""); err == nil {
				t.Fatal("empty user admitted")
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := a.Admit(ctx, "kit"); !errors.Is(err, context.Canceled) {
				t.Fatalf("Admit with a canceled context: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newLimiter(t, fast), newLimiter(t, fast))
		})
	}
}

func TestLimiterRedisDown(t *testing.T) {
	tests := []struct {
		name  string
		open  bool
		pause bool
	}{
		{"dead_redis_refuses_with_503", false, false},
		{"hung_redis_refuses_with_503_within_the_timeout", false, true},
		{"fail_open_admits_and_writes_the_leases_once_redis_is_back", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			timeout := 300 * time.Millisecond
			l := newLimiter(t, LimiterOptions{Addrs: []string{srv.Addr()}, PerUser: 2, FailOpen: tt.open,
				Timeout: timeout, LeaseTTL: time.Second, RefreshInterval: 100 * time.Millisecond})
			admit(t, l, "warm")() // the connection is up before the outage
			if tt.pause {
				srv.Pause()
			} else {
				srv.Kill()
			}
			start := time.Now()
			_, err := l.Admit(context.Background(), "zoe")
			took := time.Since(start)
			t.Logf("Admit with Redis down took %s", took)
			if took > timeout+200*time.Millisecond {
				t.Fatalf("Admit took %s with Timeout %s", took, timeout)
			}
			if !tt.open {
				assertRefusal(t, err, http.StatusServiceUnavailable, protocol.CodeUnavailable, ErrUnavailable)
				if l.Stats().Unavailable != 1 {
					t.Fatalf("stats %+v", l.Stats())
				}
				return
			}
			if err != nil {
				t.Fatalf("FailOpen Admit: %v", err)
			}
			admit(t, l, "zoe")
			// Still capped by this node's own connections.
			_, err = l.Admit(context.Background(), "zoe")
			assertRefusal(t, err, http.StatusTooManyRequests, protocol.CodeConnectionLimit, guard.ErrUserLimit)
			srv.Restart()
			raw := rawClient(t, srv.Addr())
			eventually(t, "leases written after the outage", func() error {
				if n := zcard(t, raw, "wsgate:lease:{zoe}"); n != 2 {
					return fmt.Errorf("%d leases", n)
				}
				return nil
			})
		})
	}
}

func TestLimiterOptions(t *testing.T) {
	srv := redistest.Start(t)
	addrs := []string{srv.Addr()}
	client := rawClient(t, srv.Addr())
	tests := []struct {
		name string
		opts LimiterOptions
		want string
	}{
		{"no_connection", LimiterOptions{}, "need Client or Addrs"},
		{"client_and_addrs", LimiterOptions{Client: client, Addrs: addrs}, "both Client"},
		{"empty_address", LimiterOptions{Addrs: []string{""}}, "empty address"},
		{"negative_per_user", LimiterOptions{Addrs: addrs, PerUser: -1}, "PerUser"},
		{"ttl_too_short", LimiterOptions{Addrs: addrs, LeaseTTL: 50 * time.Millisecond}, "below 100ms"},
		{"refresh_not_below_ttl", LimiterOptions{Addrs: addrs, LeaseTTL: time.Second, RefreshInterval: time.Second}, "below the TTL"},
		{"negative_timeout", LimiterOptions{Addrs: addrs, Timeout: -1}, "negative"},
		{"brace_in_cluster_prefix", LimiterOptions{Addrs: addrs, Cluster: true, Prefix: "app{1}:"}, "hash tag"},
		{"unreachable_redis", LimiterOptions{Addrs: []string{"127.0.0.1:1"}, Timeout: 200 * time.Millisecond}, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLimiter(tt.opts)
			if err == nil {
				l.Close()
				t.Fatal("NewLimiter succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	t.Run("zero_values_are_the_documented_defaults", func(t *testing.T) {
		l := newLimiter(t, LimiterOptions{Addrs: addrs})
		if l.perUser != DefaultPerUser || l.ttlArg != "30000" || l.interval != 10*time.Second ||
			l.st.timeout != DefaultTimeout || l.st.prefix != DefaultPrefix || l.failOpen {
			t.Fatalf("defaults: %d %s %s %s %q %v", l.perUser, l.ttlArg, l.interval, l.st.timeout, l.st.prefix, l.failOpen)
		}
	})
	t.Run("close_stops_every_goroutine", func(t *testing.T) {
		check := noGoroutineLeak(t)
		l, err := NewLimiter(LimiterOptions{Addrs: addrs, LeaseTTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPresence(PresenceOptions{Addrs: addrs, TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		release := admit(t, l, "gone")
		p.Add("room", "gone", "c1")
		l.Close()
		p.Close()
		l.Close() // idempotent
		release() // after Close: a no-op
		check()
	})
	t.Run("shared_client_is_not_closed", func(t *testing.T) {
		l := newLimiter(t, LimiterOptions{Client: client, Prefix: "shared:"})
		admit(t, l, "lee")
		l.Close()
		if err := client.Do(context.Background(), client.B().Ping().Build()).Error(); err != nil {
			t.Fatalf("shared client after Close: %v", err)
		}
	})
}

// BenchmarkLimiterAdmit measures one Admit and its release on a loopback
// Redis: one EVALSHA round trip, the release queued. It also reports the
// median and 99th percentile of Admit alone.
func BenchmarkLimiterAdmit(b *testing.B) {
	srv := redistest.Start(b)
	l, err := NewLimiter(LimiterOptions{Addrs: []string{srv.Addr()}, PerUser: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		release, err := l.Admit(ctx, fmt.Sprintf("user%d", i%64))
		took = append(took, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}
