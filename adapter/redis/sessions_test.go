package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/sessiontest"
	"github.com/wsgate/wsgate/internal/redistest"
)

// newSessions starts a Sessions that is closed at cleanup.
func newSessions(t *testing.T, o SessionsOptions) *Sessions {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s, err := NewSessions(o)
	if err != nil {
		t.Fatalf("NewSessions: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSessions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster bool
	}{{"standalone", false}, {"cluster", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var o SessionsOptions
			if tc.cluster {
				o.Addrs, o.Cluster = redistest.StartCluster(t, 3).Addrs(), true
			} else {
				o.Addrs = []string{redistest.Start(t).Addr()}
			}
			var stores atomic.Int64 // a prefix per store: the subtests share one Redis
			sessiontest.Run(t, func(t *testing.T) adapter.SessionStore {
				o := o
				o.Prefix = fmt.Sprintf("t%d:", stores.Add(1))
				return newSessions(t, o)
			})
		})
	}
}

func TestSessionsRedis(t *testing.T) {
	ctx := context.Background()
	record := []byte("record")
	srv := redistest.Start(t)
	addrs := []string{srv.Addr()}

	t.Run("a_record_is_one_key_that_redis_expires", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs, Prefix: "app:"})
		if err := s.Save(ctx, "abc", record, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := srv.Do("GET", "app:session:{abc}"); err != nil || got != string(record) {
			t.Fatalf("GET = %q, %v; want the record", got, err)
		}
		if ttl := pttl(t, srv, "app:session:{abc}"); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("PTTL = %v, want up to a minute", ttl)
		}
	})

	t.Run("a_ttl_under_a_millisecond_is_rounded_up", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs})
		if err := s.Save(ctx, "tiny", record, time.Microsecond); err != nil {
			t.Fatalf("Save with a TTL of 1µs: %v", err)
		}
		if err := s.Touch(ctx, []string{"tiny"}, time.Microsecond); err != nil {
			t.Fatalf("Touch with a TTL of 1µs: %v", err)
		}
	})

	t.Run("touch_pipelines_ids_past_one_round_trip", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs, Prefix: "touch:"})
		ids := make([]string, 2*maxCalls+10)
		for i := range ids {
			ids[i] = fmt.Sprint("id-", i)
			if err := s.Save(ctx, ids[i], record, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		before := commandCalls(t, rawClient(t, srv.Addr()), "pexpire")
		if err := s.Touch(ctx, append(ids, "missing"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := commandCalls(t, rawClient(t, srv.Addr()), "pexpire") - before; n != len(ids)+1 {
			t.Fatalf("%d PEXPIRE calls, want %d", n, len(ids)+1)
		}
		for _, id := range ids {
			if ttl := pttl(t, srv, "touch:session:{"+id+"}"); ttl <= time.Minute {
				t.Fatalf("PTTL of %s = %v after a Touch to an hour", id, ttl)
			}
		}
		if n, err := srv.Do("EXISTS", "touch:session:{missing}"); err != nil || n != "0" {
			t.Fatalf("EXISTS of the missing id = %q, %v; want 0: Touch must not create", n, err)
		}
	})

	t.Run("take_after_a_restart_without_persistence_finds_nothing", func(t *testing.T) {
		own := redistest.Start(t)
		s := newSessions(t, SessionsOptions{Addrs: []string{own.Addr()}, Timeout: 300 * time.Millisecond})
		if err := s.Save(ctx, "s1", record, time.Hour); err != nil {
			t.Fatal(err)
		}
		own.Restart() // no persistence: Redis comes back empty
		eventually(t, "Take answers ErrNoSession", func() error {
			got, err := s.Take(ctx, "s1")
			switch {
			case err == nil:
				t.Fatalf("Take after the restart = %q, want ErrNoSession", got)
			case errors.Is(err, adapter.ErrNoSession):
				return nil
			case !errors.Is(err, ErrUnavailable):
				t.Fatalf("Take while reconnecting: %v, want ErrUnavailable or ErrNoSession", err)
			}
			return err
		})
	})

	t.Run("a_paused_redis_is_unavailable_within_the_timeout", func(t *testing.T) {
		own := redistest.Start(t)
		s := newSessions(t, SessionsOptions{Addrs: []string{own.Addr()}, Timeout: 200 * time.Millisecond})
		own.Pause()
		defer own.Resume()
		_, takeErr := s.Take(ctx, "s1")
		for _, err := range []error{
			s.Save(ctx, "s1", record, time.Hour),
			takeErr,
			s.Touch(ctx, []string{"s1"}, time.Hour),
			s.Delete(ctx, "s1"),
		} {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("with Redis paused: %v, want ErrUnavailable", err)
			}
		}
	})

	t.Run("close_refuses_everything_and_leaves_a_given_client_open", func(t *testing.T) {
		c := rawClient(t, srv.Addr())
		s := newSessions(t, SessionsOptions{Client: c})
		s.Close()
		s.Close()
		_, takeErr := s.Take(ctx, "s1")
		for _, err := range []error{
			s.Save(ctx, "s1", record, time.Hour),
			takeErr,
			s.Touch(ctx, []string{"s1"}, time.Hour),
			s.Delete(ctx, "s1"),
		} {
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("after Close: %v, want ErrClosed", err)
			}
		}
		if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
			t.Fatalf("the given client after Close: %v", err)
		}
	})

	t.Run("invalid_options_are_refused", func(t *testing.T) {
		for name, o := range map[string]SessionsOptions{
			"no_client_or_addrs":          {},
			"client_and_addrs":            {Client: rawClient(t, srv.Addr()), Addrs: addrs},
			"negative_timeout":            {Addrs: addrs, Timeout: -time.Second},
			"empty_address":               {Addrs: []string{""}},
			"a_brace_in_a_cluster_prefix": {Addrs: addrs, Cluster: true, Prefix: "{app}:"},
		} {
			t.Run(name, func(t *testing.T) {
				if s, err := NewSessions(o); err == nil {
					s.Close()
					t.Fatal("NewSessions succeeded")
				}
			})
		}
	})
}

// pttl returns the TTL of key, negative when it has none (-1ms) or does not
// exist (-2ms).
func pttl(t *testing.T, srv *redistest.Server, key string) time.Duration {
	t.Helper()
	reply, err := srv.Do("PTTL", key)
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	ms, err := strconv.ParseInt(reply, 10, 64)
	if err != nil {
		t.Fatalf("PTTL %s = %q: %v", key, reply, err)
	}
	return time.Duration(ms) * time.Millisecond
}
