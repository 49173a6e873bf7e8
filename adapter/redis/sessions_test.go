package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
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

	t.Run("a_record_and_its_tombstone_are_one_key_that_redis_expires", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs, Prefix: "app:"})
		const key = "app:session:{abc}"
		if err := s.Save(ctx, "abc", 41, record, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := srv.Do("GET", key); err != nil || got != "00000000000000000041:r"+string(record) {
			t.Fatalf("GET = %q, %v; want the version and the record", got, err)
		}
		if ttl := pttl(t, srv, key); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("PTTL = %v, want up to a minute", ttl)
		}
		if _, _, err := s.Take(ctx, "abc", time.Second); err != nil {
			t.Fatal(err)
		}
		if got, err := srv.Do("GET", key); err != nil || got != "00000000000000000042:t" {
			t.Fatalf("GET after Take = %q, %v; want the tombstone of the next version", got, err)
		}
		if ttl := pttl(t, srv, key); ttl <= 0 || ttl > time.Second {
			t.Fatalf("PTTL of the tombstone = %v, want up to the second Take gave it", ttl)
		}
	})

	t.Run("a_value_in_no_known_form_is_no_record", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs, Prefix: "odd:"})
		for i, v := range []string{"", "record", "00000000000000000041:x", "0000000000000000004x:r", "0000000000000000041:r"} {
			id := fmt.Sprint("odd-", i)
			if _, err := srv.Do("SET", "odd:session:{"+id+"}", v); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Take(ctx, id, time.Minute); !errors.Is(err, adapter.ErrNoSession) {
				t.Fatalf("Take of %q: %v, want ErrNoSession", v, err)
			}
			if err := s.Save(ctx, id, 0, record, time.Minute); err != nil {
				t.Fatalf("Save over %q: %v", v, err)
			}
		}
	})

	t.Run("a_version_without_a_successor_is_refused", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs, Prefix: "max:"})
		if err := s.Save(ctx, "a", math.MaxUint64, record, time.Hour); !errors.Is(err, adapter.ErrInvalidOptions) {
			t.Fatalf("Save of version MaxUint64: %v, want ErrInvalidOptions", err)
		}
		if err := s.Delete(ctx, "a", math.MaxUint64, time.Hour); !errors.Is(err, adapter.ErrInvalidOptions) {
			t.Fatalf("Delete of version MaxUint64: %v, want ErrInvalidOptions", err)
		}
		if n, err := srv.Do("EXISTS", "max:session:{a}"); err != nil || n != "0" {
			t.Fatalf("EXISTS after refused calls = %q, %v; want 0", n, err)
		}
	})

	t.Run("a_ttl_under_a_millisecond_is_rounded_up", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs})
		if err := s.Save(ctx, "tiny", 1, record, time.Microsecond); err != nil {
			t.Fatalf("Save with a TTL of 1µs: %v", err)
		}
		if err := s.Touch(ctx, []string{"tiny"}, time.Microsecond); err != nil {
			t.Fatalf("Touch with a TTL of 1µs: %v", err)
		}
	})

	t.Run("touch_pipelines_ids_past_one_round_trip_and_skips_tombstones", func(t *testing.T) {
		s := newSessions(t, SessionsOptions{Addrs: addrs, Prefix: "touch:"})
		ids := make([]string, 2*maxCalls+10)
		for i := range ids {
			ids[i] = fmt.Sprint("id-", i)
			if err := s.Save(ctx, ids[i], 1, record, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "tombstone", 1, time.Minute); err != nil {
			t.Fatal(err)
		}
		c := rawClient(t, srv.Addr())
		before := commandCalls(t, c, "pexpire")
		if err := s.Touch(ctx, append(ids, "missing", "tombstone"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := commandCalls(t, c, "pexpire") - before; n != len(ids) {
			t.Fatalf("%d PEXPIRE calls, want %d: one per record, none for the others", n, len(ids))
		}
		for _, id := range ids {
			if ttl := pttl(t, srv, "touch:session:{"+id+"}"); ttl <= time.Minute {
				t.Fatalf("PTTL of %s = %v after a Touch to an hour", id, ttl)
			}
		}
		if ttl := pttl(t, srv, "touch:session:{tombstone}"); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("PTTL of the tombstone = %v after a Touch to an hour, want its own minute", ttl)
		}
		if n, err := srv.Do("EXISTS", "touch:session:{missing}"); err != nil || n != "0" {
			t.Fatalf("EXISTS of the missing id = %q, %v; want 0: Touch must not create", n, err)
		}
	})

	t.Run("take_after_a_restart_without_persistence_finds_nothing", func(t *testing.T) {
		own := redistest.Start(t)
		s := newSessions(t, SessionsOptions{Addrs: []string{own.Addr()}, Timeout: 300 * time.Millisecond})
		if err := s.Save(ctx, "s1", 1, record, time.Hour); err != nil {
			t.Fatal(err)
		}
		own.Restart() // no persistence: Redis comes back empty
		eventually(t, "Take answers ErrNoSession", func() error {
			got, _, err := s.Take(ctx, "s1", time.Hour)
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
		_, _, takeErr := s.Take(ctx, "s1", time.Hour)
		for _, err := range []error{
			s.Save(ctx, "s1", 1, record, time.Hour),
			takeErr,
			s.Touch(ctx, []string{"s1"}, time.Hour),
			s.Delete(ctx, "s1", 1, time.Hour),
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
		_, _, takeErr := s.Take(ctx, "s1", time.Hour)
		for _, err := range []error{
			s.Save(ctx, "s1", 1, record, time.Hour),
			takeErr,
			s.Touch(ctx, []string{"s1"}, time.Hour),
			s.Delete(ctx, "s1", 1, time.Hour),
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
