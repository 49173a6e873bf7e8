package memory_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/adapter/sessiontest"
)

func TestSessions(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) adapter.SessionStore {
		s := memory.NewSessions(memory.SessionsOptions{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSessionsMemory(t *testing.T) {
	ctx := context.Background()
	record := []byte("record")

	t.Run("a_record_is_gone_at_its_ttl_and_touch_does_not_revive_it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := memory.NewSessions(memory.SessionsOptions{})
			defer s.Close()
			for _, id := range []string{"taken", "touched"} {
				if err := s.Save(ctx, id, 1, record, 1500*time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
			// Between two sweeps (at 1s and 2s): the expired records are
			// still held, and must be invisible all the same.
			time.Sleep(1500 * time.Millisecond)
			if _, _, err := s.Take(ctx, "taken", time.Hour); !errors.Is(err, adapter.ErrNoSession) {
				t.Fatalf("Take at the TTL: %v, want ErrNoSession", err)
			}
			if err := s.Touch(ctx, []string{"touched"}, time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Take(ctx, "touched", time.Hour); !errors.Is(err, adapter.ErrNoSession) {
				t.Fatalf("Take of an expired record after Touch: %v, want ErrNoSession", err)
			}
		})
	})

	t.Run("a_save_beyond_max_records_is_refused_and_a_replacement_is_not", func(t *testing.T) {
		s := memory.NewSessions(memory.SessionsOptions{MaxRecords: 3})
		defer s.Close()
		for i := range 3 {
			if err := s.Save(ctx, fmt.Sprint(i), 1, record, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Save(ctx, "3", 1, record, time.Hour); !errors.Is(err, memory.ErrTooManySessions) {
			t.Fatalf("Save of a 4th record: %v, want ErrTooManySessions", err)
		}
		if err := s.Save(ctx, "0", 1, []byte("new"), time.Hour); err != nil {
			t.Fatalf("Save replacing a record of a full store: %v", err)
		}
		if err := s.Delete(ctx, "1", 1, time.Hour); err != nil {
			t.Fatalf("Delete of a record of a full store: %v", err)
		}
		if err := s.Save(ctx, "3", 1, record, time.Hour); !errors.Is(err, memory.ErrTooManySessions) {
			t.Fatalf("Save of a 4th entry beside a tombstone: %v, want ErrTooManySessions", err)
		}
	})

	t.Run("tombstones_count_against_max_records_until_they_expire", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := memory.NewSessions(memory.SessionsOptions{MaxRecords: 3})
			defer s.Close()
			for i := range 3 {
				if err := s.Save(ctx, fmt.Sprint(i), 1, record, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := s.Take(ctx, "0", time.Second); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "1", 1, time.Second); err != nil {
				t.Fatal(err)
			}
			if n := s.Len(); n != 3 {
				t.Fatalf("Len = %d with a record and 2 tombstones, want 3", n)
			}
			if err := s.Save(ctx, "3", 1, record, time.Hour); !errors.Is(err, memory.ErrTooManySessions) {
				t.Fatalf("Save beside 2 tombstones in a full store: %v, want ErrTooManySessions", err)
			}
			// A tombstone fences a late writer: one that cannot be left
			// refuses the Delete rather than fence nothing.
			if err := s.Delete(ctx, "never-saved", 1, time.Second); !errors.Is(err, memory.ErrTooManySessions) {
				t.Fatalf("Delete of a new id in a full store: %v, want ErrTooManySessions", err)
			}
			time.Sleep(time.Second)
			for _, id := range []string{"3", "4"} {
				if err := s.Save(ctx, id, 1, record, time.Hour); err != nil {
					t.Fatalf("Save once the tombstones expired: %v", err)
				}
			}
		})
	})

	t.Run("a_version_without_a_successor_is_refused", func(t *testing.T) {
		s := memory.NewSessions(memory.SessionsOptions{})
		defer s.Close()
		if err := s.Save(ctx, "a", math.MaxUint64, record, time.Hour); !errors.Is(err, adapter.ErrInvalidOptions) {
			t.Fatalf("Save of version MaxUint64: %v, want ErrInvalidOptions", err)
		}
		if err := s.Delete(ctx, "a", math.MaxUint64, time.Hour); !errors.Is(err, adapter.ErrInvalidOptions) {
			t.Fatalf("Delete of version MaxUint64: %v, want ErrInvalidOptions", err)
		}
		if n := s.Len(); n != 0 {
			t.Fatalf("Len = %d after refused calls, want 0", n)
		}
	})

	t.Run("expired_records_do_not_count_against_max_records", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := memory.NewSessions(memory.SessionsOptions{MaxRecords: 10})
			defer s.Close()
			for i := range 10 {
				if err := s.Save(ctx, fmt.Sprint(i), 1, record, 500*time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(600 * time.Millisecond) // expired, and not swept: the sweeper runs each second
			if n := s.Len(); n != 10 {
				t.Fatalf("Len = %d before the Save, want the 10 expired records", n)
			}
			for i := range 10 {
				if err := s.Save(ctx, fmt.Sprint("new-", i), 1, record, time.Hour); err != nil {
					t.Fatalf("Save %d into a store of expired records: %v", i, err)
				}
			}
			if n := s.Len(); n != 10 {
				t.Fatalf("Len = %d after 10 Saves, want 10", n)
			}
		})
	})

	t.Run("a_save_drops_a_few_expired_records_not_all", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := memory.NewSessions(memory.SessionsOptions{})
			defer s.Close()
			for i := range 100 {
				if err := s.Save(ctx, fmt.Sprint(i), 1, record, 500*time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(600 * time.Millisecond)
			if err := s.Save(ctx, "new", 1, record, time.Hour); err != nil {
				t.Fatal(err)
			}
			// Each Save does a bounded amount of work; the sweeper does the rest.
			if n := s.Len(); n <= 1 || n > 100 {
				t.Fatalf("Len = %d after a Save among 100 expired records, want some dropped, not all", n)
			}
		})
	})

	t.Run("the_sweeper_stops_by_itself_once_the_store_is_empty", func(t *testing.T) {
		// synctest.Test fails if a goroutine of the bubble outlives it,
		// and the store is never closed.
		synctest.Test(t, func(t *testing.T) {
			s := memory.NewSessions(memory.SessionsOptions{})
			if err := s.Save(ctx, "a", 1, record, time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			synctest.Wait()
			if n := s.Len(); n != 0 {
				t.Fatalf("Len = %d after the TTL and two sweeps", n)
			}
		})
	})

	t.Run("a_closed_store_refuses_everything", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := memory.NewSessions(memory.SessionsOptions{})
			if err := s.Save(ctx, "a", 1, record, time.Hour); err != nil {
				t.Fatal(err)
			}
			s.Close() // stops the sweeper, or synctest.Test fails
			s.Close()
			_, _, takeErr := s.Take(ctx, "a", time.Hour)
			for _, err := range []error{
				s.Save(ctx, "b", 1, record, time.Hour),
				takeErr,
				s.Touch(ctx, []string{"a"}, time.Hour),
				s.Delete(ctx, "a", 1, time.Hour),
			} {
				if !errors.Is(err, adapter.ErrClosed) {
					t.Fatalf("after Close: %v, want adapter.ErrClosed", err)
				}
			}
		})
	})
}

// Records of clients that never come back must not accumulate: 100,000
// of them, the default MaxRecords, return the store and the heap to where
// they started once their TTL has passed, and the sweeper stops.
func TestSessionsMemoryIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := memory.NewSessions(memory.SessionsOptions{})
		defer s.Close()
		baseline := heapInUse()
		record := make([]byte, 64)
		for i := range memory.DefaultMaxSessions {
			if err := s.Save(ctx, fmt.Sprintf("session-%d", i), 1, record, 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Save(ctx, "one-too-many", 1, record, time.Second); !errors.Is(err, memory.ErrTooManySessions) {
			t.Fatalf("Save of record %d: %v, want ErrTooManySessions", memory.DefaultMaxSessions+1, err)
		}
		peak := heapInUse()
		if peak < baseline+10<<20 {
			t.Fatalf("heap %d KiB at the peak, %d KiB at the start: the measure cannot see the records", peak>>10, baseline>>10)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait() // the sweeper has run and stopped
		if n := s.Len(); n != 0 {
			t.Fatalf("Len = %d after the TTL and a sweep", n)
		}
		after := heapInUse()
		t.Logf("heap: %d KiB at the start, %d KiB with %d records, %d KiB after their TTL",
			baseline>>10, peak>>10, memory.DefaultMaxSessions, after>>10)
		// The slack is below the 800 KiB of the heap's array of pointers.
		if after > baseline+512<<10 {
			t.Fatalf("heap %d KiB after the TTL, %d KiB at the start", after>>10, baseline>>10)
		}
	})
}
