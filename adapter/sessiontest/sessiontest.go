package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
)

// TTLs of the checks. shortTTL is what a record that must expire lives;
// touchTTL is the first TTL of a record that is then touched, long enough
// for a Save and a Touch to complete within it on a loaded machine;
// longTTL outlives every check.
const (
	shortTTL = 50 * time.Millisecond
	touchTTL = 300 * time.Millisecond
	longTTL  = time.Minute
)

// A wait for expiry spends one probe record per poll: a record that
// outlives its TTL by probes × pollEvery (two seconds) fails the check.
const (
	probes    = 100
	pollEvery = 20 * time.Millisecond
)

// Run checks the behaviour that adapter.SessionStore documents, one
// subtest per behaviour. The subtests run in parallel, each on a store of
// its own from newStore, which must therefore be safe to call
// concurrently; it closes the store at the test's cleanup if needed.
func Run(t *testing.T, newStore func(t *testing.T) adapter.SessionStore) {
	t.Helper()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s adapter.SessionStore)
	}{
		{"a_saved_record_is_taken_back_with_its_version", takenBack},
		{"a_second_take_finds_nothing", takenOnce},
		{"an_unknown_id_has_no_record", unknown},
		{"save_replaces_a_record_of_its_version_or_a_lower_one", replaced},
		{"save_of_a_lower_version_is_refused_and_changes_nothing", saveStale},
		{"save_keeps_a_copy_of_the_record", copied},
		{"take_leaves_a_tombstone_of_the_next_version", takeFences},
		{"delete_of_a_lower_version_is_refused_and_the_record_stays", deleteStale},
		{"delete_leaves_a_tombstone_of_the_next_version", deleteFences},
		{"versions_are_compared_exactly_across_the_uint64_range", wideVersions},
		{"one_of_16_concurrent_takes_gets_the_record", contended},
		{"of_16_concurrent_saves_the_highest_version_stays", concurrentSaves},
		{"an_expired_record_is_gone", expired},
		{"a_tombstone_is_gone_at_its_ttl", tombstoneExpires},
		{"touch_keeps_a_record_past_its_first_ttl", touched},
		{"touch_skips_the_ids_without_a_record", touchSkips},
		{"touch_leaves_a_tombstone_to_its_own_ttl", touchSkipsTombstones},
		{"ids_and_records_at_the_bounds_are_kept", bounds},
		{"invalid_ids_records_and_ttls_are_refused", refused},
		{"a_canceled_context_is_refused", canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

var record = []byte(`{"pid":"p1","offset":"42","rooms":["lobby"]}`)

func takenBack(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 7, record, longTTL)
	expectRecord(t, s, "s1", record, 7)
	save(t, s, "s0", 0, record, longTTL) // the zero version is one like any other
	expectRecord(t, s, "s0", record, 0)
}

func takenOnce(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 1, record, longTTL)
	expectRecord(t, s, "s1", record, 1)
	expectGone(t, s, "s1")
}

func unknown(t *testing.T, s adapter.SessionStore) {
	expectGone(t, s, "never-saved")
}

func replaced(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 1, []byte("first"), longTTL)
	save(t, s, "s1", 1, []byte("second"), longTTL) // the same connection saves again
	save(t, s, "s1", 2, []byte("third"), longTTL)
	expectRecord(t, s, "s1", []byte("third"), 2)
	expectGone(t, s, "s1")
}

// saveStale checks that a refused Save changes neither the record nor its
// TTL.
func saveStale(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 5, record, longTTL)
	expectStale(t, "Save of version 4 over 5", s.Save(t.Context(), "s1", 4, []byte("stale"), longTTL))
	expectStale(t, "Save of version 0 over 5", s.Save(t.Context(), "s1", 0, []byte("stale"), longTTL))
	expectRecord(t, s, "s1", record, 5)

	save(t, s, "short", 5, record, touchTTL)
	expectStale(t, "Save of version 4 over 5", s.Save(t.Context(), "short", 4, record, longTTL))
	awaitExpiry(t, s, saveProbes(t, s, touchTTL))
	expectGone(t, s, "short") // the refused Save did not extend the TTL
}

func copied(t *testing.T, s adapter.SessionStore) {
	buf := bytes.Clone(record)
	save(t, s, "s1", 1, buf, longTTL)
	copy(buf, "XXXX") // the caller reuses its buffer
	expectRecord(t, s, "s1", record, 1)
}

// takeFences checks that the record a Take returned cannot be saved back
// by its writer, and can by the writer of the next version: the
// connection that resumed it.
func takeFences(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 1, record, longTTL)
	expectRecord(t, s, "s1", record, 1)
	expectStale(t, "Save of version 1 after a Take", s.Save(t.Context(), "s1", 1, []byte("stale"), longTTL))
	expectGone(t, s, "s1") // the refused Save wrote nothing, and the tombstone is no record
	save(t, s, "s1", 2, []byte("resumed"), longTTL)
	expectRecord(t, s, "s1", []byte("resumed"), 2)
}

func deleteStale(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 3, record, longTTL)
	expectStale(t, "Delete of version 2 over 3", s.Delete(t.Context(), "s1", 2, longTTL))
	expectRecord(t, s, "s1", record, 3)

	// The connection whose record a resume took cannot delete the
	// tombstone of version 4 either.
	expectStale(t, "Delete of version 3 after a Take", s.Delete(t.Context(), "s1", 3, longTTL))
	save(t, s, "s1", 4, record, longTTL)
	expectRecord(t, s, "s1", record, 4)
}

func deleteFences(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 3, record, longTTL)
	save(t, s, "s2", 3, record, longTTL)
	deleteAt(t, s, "s1", 3)
	expectGone(t, s, "s1")
	expectStale(t, "Save of version 3 after its Delete", s.Save(t.Context(), "s1", 3, record, longTTL))
	expectStale(t, "a second Delete of version 3", s.Delete(t.Context(), "s1", 3, longTTL))
	expectGone(t, s, "s1")
	save(t, s, "s1", 4, []byte("next"), longTTL)
	expectRecord(t, s, "s1", []byte("next"), 4)
	expectRecord(t, s, "s2", record, 3) // a neighbour stays

	deleteAt(t, s, "never-saved", 7) // leaves a tombstone all the same
	expectGone(t, s, "never-saved")
	expectStale(t, "Save of version 7 after its Delete", s.Save(t.Context(), "never-saved", 7, record, longTTL))
	save(t, s, "never-saved", 8, record, longTTL)
	expectRecord(t, s, "never-saved", record, 8)

	// A Delete of a tombstone's version replaces it by the next.
	save(t, s, "s3", 1, record, longTTL)
	expectRecord(t, s, "s3", record, 1)
	deleteAt(t, s, "s3", 2)
	expectStale(t, "Save of version 2 after its Delete", s.Save(t.Context(), "s3", 2, record, longTTL))
	save(t, s, "s3", 3, record, longTTL)
	expectRecord(t, s, "s3", record, 3)
}

// wideVersions checks versions that a store could confuse: of different
// numbers of digits, beyond 2^53 (where a float64 no longer tells n from
// n+1) and at the top of the range.
func wideVersions(t *testing.T, s adapter.SessionStore) {
	save(t, s, "digits", 9, record, longTTL)
	save(t, s, "digits", 10, record, longTTL)
	expectStale(t, "Save of version 9 over 10", s.Save(t.Context(), "digits", 9, record, longTTL))
	expectRecord(t, s, "digits", record, 10)

	const big = 1<<53 + 1
	save(t, s, "big", big, record, longTTL)
	expectStale(t, "Save of version 2^53 over 2^53+1", s.Save(t.Context(), "big", big-1, record, longTTL))
	expectRecord(t, s, "big", record, big)
	expectStale(t, "Save of version 2^53+1 after its Take", s.Save(t.Context(), "big", big, record, longTTL))
	save(t, s, "big", big+1, record, longTTL)
	expectRecord(t, s, "big", record, big+1)

	const top = math.MaxUint64 - 1
	save(t, s, "top", top, record, longTTL)
	expectRecord(t, s, "top", record, top)
	expectStale(t, "Save of version MaxUint64-1 after its Take", s.Save(t.Context(), "top", top, record, longTTL))
	expectStale(t, "Delete of version MaxUint64-1 after its Take", s.Delete(t.Context(), "top", top, longTTL))
	deleteAt(t, s, "deleted-top", top)
	expectStale(t, "Save of version MaxUint64-1 after its Delete", s.Save(t.Context(), "deleted-top", top, record, longTTL))
}

// contended races 16 Takes of one record, ten times over: exactly one
// gets it each time, with its version.
func contended(t *testing.T, s adapter.SessionStore) {
	for round := range uint64(10) {
		id := fmt.Sprintf("contended-%d", round)
		save(t, s, id, round, record, longTTL)
		var wins atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				<-start
				got, v, err := s.Take(t.Context(), id, longTTL)
				switch {
				case err == nil:
					wins.Add(1)
					if !bytes.Equal(got, record) || v != round {
						t.Errorf("Take = %q, %d; want %q, %d", got, v, record, round)
					}
				case !errors.Is(err, adapter.ErrNoSession):
					t.Errorf("Take: %v, want the record or ErrNoSession", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d of 16 concurrent Takes got the record, want exactly 1", round, n)
		}
		expectStale(t, "Save of the taken version", s.Save(t.Context(), id, round, record, longTTL))
	}
}

// concurrentSaves races Saves of versions 0 to 15 of one id: whatever
// their order, the record of version 15 is the one left, since it cannot
// be refused and no other can replace it.
func concurrentSaves(t *testing.T, s adapter.SessionStore) {
	for round := range 10 {
		id := fmt.Sprintf("saved-%d", round)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for v := range uint64(16) {
			wg.Go(func() {
				<-start
				err := s.Save(t.Context(), id, v, []byte(fmt.Sprint(v)), longTTL)
				if err != nil && !errors.Is(err, adapter.ErrStaleSession) {
					t.Errorf("Save of version %d: %v, want nil or ErrStaleSession", v, err)
				}
			})
		}
		close(start)
		wg.Wait()
		expectRecord(t, s, id, []byte("15"), 15)
	}
}

func expired(t *testing.T, s adapter.SessionStore) {
	save(t, s, "short", 1, record, shortTTL)
	awaitExpiry(t, s, saveProbes(t, s, shortTTL))
	expectGone(t, s, "short") // saved before every probe, with their TTL
}

// tombstoneExpires checks that a tombstone lives for the TTL it was given
// and no longer: once it is gone, any version may be saved again.
func tombstoneExpires(t *testing.T, s adapter.SessionStore) {
	save(t, s, "deleted", 5, record, longTTL)
	if err := s.Delete(t.Context(), "deleted", 5, shortTTL); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	save(t, s, "taken", 5, record, longTTL)
	if _, _, err := s.Take(t.Context(), "taken", shortTTL); err != nil {
		t.Fatalf("Take: %v", err)
	}
	awaitExpiry(t, s, saveProbes(t, s, shortTTL))
	for _, id := range []string{"deleted", "taken"} {
		save(t, s, id, 0, record, longTTL)
		expectRecord(t, s, id, record, 0)
	}
}

func touched(t *testing.T, s adapter.SessionStore) {
	save(t, s, "kept", 1, record, touchTTL)
	if err := s.Touch(t.Context(), []string{"kept"}, longTTL); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	// The probes, saved later with the same first TTL, expire after it
	// would have.
	awaitExpiry(t, s, saveProbes(t, s, touchTTL))
	expectRecord(t, s, "kept", record, 1)
}

func touchSkips(t *testing.T, s adapter.SessionStore) {
	save(t, s, "present", 1, record, longTTL)
	save(t, s, "taken", 1, record, longTTL)
	expectRecord(t, s, "taken", record, 1)
	if err := s.Touch(t.Context(), []string{"missing", "present", "taken"}, longTTL); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if err := s.Touch(t.Context(), nil, longTTL); err != nil {
		t.Fatalf("Touch of no ids: %v", err)
	}
	expectGone(t, s, "missing") // not created by the Touch
	expectGone(t, s, "taken")   // nor revived
	expectRecord(t, s, "present", record, 1)
}

// touchSkipsTombstones checks that a Touch does not extend a tombstone:
// it expires at the TTL of the Take that left it, after which the version
// it fenced may be saved again.
func touchSkipsTombstones(t *testing.T, s adapter.SessionStore) {
	save(t, s, "taken", 1, record, longTTL)
	if _, _, err := s.Take(t.Context(), "taken", touchTTL); err != nil {
		t.Fatalf("Take: %v", err)
	}
	if err := s.Touch(t.Context(), []string{"taken"}, longTTL); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	expectStale(t, "Save of version 1 after its Take", s.Save(t.Context(), "taken", 1, record, longTTL))
	awaitExpiry(t, s, saveProbes(t, s, touchTTL))
	save(t, s, "taken", 0, record, longTTL)
	expectRecord(t, s, "taken", record, 0)
}

// bounds saves the largest record under the longest id, and ids of bytes
// that a key syntax might give a meaning to.
func bounds(t *testing.T, s adapter.SessionStore) {
	longID := strings.Repeat("i", adapter.MaxSessionID)
	big := bytes.Repeat([]byte{0, 0xff, '{', '}'}, adapter.MaxSessionRecord/4)
	save(t, s, longID, 1, big, longTTL)
	expectRecord(t, s, longID, big, 1)

	odd := []string{"a", "a}", "{a}", "a*", "\x00\xff", "a b", "a:b"}
	for i, id := range odd {
		save(t, s, id, uint64(i), []byte(fmt.Sprint(i)), longTTL)
	}
	save(t, s, "empty", 1, nil, longTTL)
	for i, id := range odd {
		expectRecord(t, s, id, []byte(fmt.Sprint(i)), uint64(i))
	}
	expectRecord(t, s, "empty", nil, 1)
}

func refused(t *testing.T, s adapter.SessionStore) {
	longID := strings.Repeat("i", adapter.MaxSessionID+1)
	big := make([]byte, adapter.MaxSessionRecord+1)
	save(t, s, "kept", 1, record, longTTL)
	take := func(ctx context.Context, id string, ttl time.Duration) error {
		_, _, err := s.Take(ctx, id, ttl)
		return err
	}
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"save_of_an_empty_id", func(ctx context.Context) error { return s.Save(ctx, "", 2, record, longTTL) }},
		{"save_of_a_long_id", func(ctx context.Context) error { return s.Save(ctx, longID, 2, record, longTTL) }},
		{"save_of_a_large_record", func(ctx context.Context) error { return s.Save(ctx, "kept", 2, big, longTTL) }},
		{"save_with_a_zero_ttl", func(ctx context.Context) error { return s.Save(ctx, "refused", 2, record, 0) }},
		{"save_with_a_negative_ttl", func(ctx context.Context) error { return s.Save(ctx, "refused", 2, record, -time.Second) }},
		{"take_of_an_empty_id", func(ctx context.Context) error { return take(ctx, "", longTTL) }},
		{"take_of_a_long_id", func(ctx context.Context) error { return take(ctx, longID, longTTL) }},
		{"take_with_a_zero_ttl", func(ctx context.Context) error { return take(ctx, "kept", 0) }},
		{"take_with_a_negative_ttl", func(ctx context.Context) error { return take(ctx, "kept", -time.Second) }},
		{"touch_of_an_empty_id", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept", ""}, longTTL) }},
		{"touch_of_a_long_id", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept", longID}, longTTL) }},
		{"touch_with_a_zero_ttl", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept"}, 0) }},
		{"touch_with_a_negative_ttl", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept"}, -time.Second) }},
		{"delete_of_an_empty_id", func(ctx context.Context) error { return s.Delete(ctx, "", 2, longTTL) }},
		{"delete_of_a_long_id", func(ctx context.Context) error { return s.Delete(ctx, longID, 2, longTTL) }},
		{"delete_with_a_zero_ttl", func(ctx context.Context) error { return s.Delete(ctx, "kept", 2, 0) }},
		{"delete_with_a_negative_ttl", func(ctx context.Context) error { return s.Delete(ctx, "kept", 2, -time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(t.Context()); !errors.Is(err, adapter.ErrInvalidOptions) {
				t.Fatalf("got %v, want an error wrapping adapter.ErrInvalidOptions", err)
			}
		})
	}
	expectGone(t, s, "refused")
	expectRecord(t, s, "kept", record, 1) // neither replaced, taken, deleted nor expired
}

func canceled(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", 1, record, longTTL)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, takeErr := s.Take(ctx, "s1", longTTL)
	for _, c := range []struct {
		method string
		err    error
	}{
		{"Save", s.Save(ctx, "s2", 1, record, longTTL)},
		{"Take", takeErr},
		{"Touch", s.Touch(ctx, []string{"s1"}, longTTL)},
		{"Delete", s.Delete(ctx, "s1", 1, longTTL)},
	} {
		if !errors.Is(c.err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", c.method, c.err)
		}
	}
}

func save(t *testing.T, s adapter.SessionStore, id string, v uint64, rec []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Save(t.Context(), id, v, rec, ttl); err != nil {
		t.Fatalf("Save(%q, %d): %v", id, v, err)
	}
}

func deleteAt(t *testing.T, s adapter.SessionStore, id string, v uint64) {
	t.Helper()
	if err := s.Delete(t.Context(), id, v, longTTL); err != nil {
		t.Fatalf("Delete(%q, %d): %v", id, v, err)
	}
}

// expectRecord takes id's record, which must be want at version v. The
// tombstone the Take leaves lives for longTTL.
func expectRecord(t *testing.T, s adapter.SessionStore, id string, want []byte, v uint64) {
	t.Helper()
	got, gotV, err := s.Take(t.Context(), id, longTTL)
	if err != nil {
		t.Fatalf("Take(%q): %v, want its record", id, err)
	}
	if !bytes.Equal(got, want) || gotV != v {
		t.Fatalf("Take(%q) = %.40q (%d bytes) at version %d, want %.40q (%d bytes) at version %d",
			id, got, len(got), gotV, want, len(want), v)
	}
}

// expectGone checks that id has no record.
func expectGone(t *testing.T, s adapter.SessionStore, id string) {
	t.Helper()
	if got, v, err := s.Take(t.Context(), id, longTTL); !errors.Is(err, adapter.ErrNoSession) {
		t.Fatalf("Take(%q) = %.40q, %d, %v; want ErrNoSession", id, got, v, err)
	}
}

// expectStale checks that err, of the call what, is ErrStaleSession.
func expectStale(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, adapter.ErrStaleSession) {
		t.Fatalf("%s: %v, want ErrStaleSession", what, err)
	}
}

// saveProbes saves the probe records with ttl, at version 0, and returns
// their ids in the order saved. A check saves them once: the probes that
// awaitExpiry takes leave tombstones that would refuse a second Save.
func saveProbes(t *testing.T, s adapter.SessionStore, ttl time.Duration) []string {
	t.Helper()
	ids := make([]string, probes)
	for i := range ids {
		ids[i] = fmt.Sprintf("probe-%d", i)
		save(t, s, ids[i], 0, record, ttl)
	}
	return ids
}

// awaitExpiry waits until the probes saved with one TTL have expired. Only
// Take can tell whether a record is there, and it consumes it, so each
// poll takes one probe, from the newest back; once one is gone, every
// older one must be gone too.
func awaitExpiry(t *testing.T, s adapter.SessionStore, ids []string) {
	t.Helper()
	for i := len(ids) - 1; i >= 0; i-- {
		_, _, err := s.Take(t.Context(), ids[i], longTTL)
		switch {
		case errors.Is(err, adapter.ErrNoSession):
			for _, id := range ids[:i] {
				expectGone(t, s, id)
			}
			return
		case err != nil:
			t.Fatalf("Take(%q): %v", ids[i], err)
		}
		time.Sleep(pollEvery) // time passing is the event awaited
	}
	t.Fatalf("records still there %d polls %v apart after they were saved", len(ids), pollEvery)
}
