package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
		{"a_saved_record_is_taken_back", takenBack},
		{"a_second_take_finds_nothing", takenOnce},
		{"an_unknown_id_has_no_record", unknown},
		{"save_replaces_the_record", replaced},
		{"save_keeps_a_copy_of_the_record", copied},
		{"one_of_16_concurrent_takes_gets_the_record", contended},
		{"an_expired_record_is_gone", expired},
		{"touch_keeps_a_record_past_its_first_ttl", touched},
		{"touch_skips_the_ids_without_a_record", touchSkips},
		{"delete_removes_the_record", deleted},
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
	save(t, s, "s1", record, longTTL)
	expectRecord(t, s, "s1", record)
}

func takenOnce(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", record, longTTL)
	expectRecord(t, s, "s1", record)
	expectGone(t, s, "s1")
}

func unknown(t *testing.T, s adapter.SessionStore) {
	expectGone(t, s, "never-saved")
}

func replaced(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", []byte("first"), longTTL)
	save(t, s, "s1", []byte("second"), longTTL)
	expectRecord(t, s, "s1", []byte("second"))
	expectGone(t, s, "s1")
}

func copied(t *testing.T, s adapter.SessionStore) {
	buf := bytes.Clone(record)
	save(t, s, "s1", buf, longTTL)
	copy(buf, "XXXX") // the caller reuses its buffer
	expectRecord(t, s, "s1", record)
}

// contended races 16 Takes of one record, ten times over: exactly one
// gets it each time.
func contended(t *testing.T, s adapter.SessionStore) {
	for round := range 10 {
		id := fmt.Sprintf("contended-%d", round)
		save(t, s, id, record, longTTL)
		var wins atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				<-start
				got, err := s.Take(t.Context(), id)
				switch {
				case err == nil:
					wins.Add(1)
					if !bytes.Equal(got, record) {
						t.Errorf("Take = %q, want %q", got, record)
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
	}
}

func expired(t *testing.T, s adapter.SessionStore) {
	save(t, s, "short", record, shortTTL)
	awaitExpiry(t, s, saveProbes(t, s, shortTTL))
	expectGone(t, s, "short") // saved before every probe, with their TTL
}

func touched(t *testing.T, s adapter.SessionStore) {
	save(t, s, "kept", record, touchTTL)
	if err := s.Touch(t.Context(), []string{"kept"}, longTTL); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	// The probes, saved later with the same first TTL, expire after it
	// would have.
	awaitExpiry(t, s, saveProbes(t, s, touchTTL))
	expectRecord(t, s, "kept", record)
}

func touchSkips(t *testing.T, s adapter.SessionStore) {
	save(t, s, "present", record, longTTL)
	save(t, s, "taken", record, longTTL)
	expectRecord(t, s, "taken", record)
	if err := s.Touch(t.Context(), []string{"missing", "present", "taken"}, longTTL); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if err := s.Touch(t.Context(), nil, longTTL); err != nil {
		t.Fatalf("Touch of no ids: %v", err)
	}
	expectGone(t, s, "missing") // not created by the Touch
	expectGone(t, s, "taken")
	expectRecord(t, s, "present", record)
}

func deleted(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", record, longTTL)
	save(t, s, "s2", record, longTTL)
	for _, id := range []string{"s1", "s1", "never-saved"} {
		if err := s.Delete(t.Context(), id); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	expectGone(t, s, "s1")
	expectRecord(t, s, "s2", record) // a neighbour stays
}

// bounds saves the largest record under the longest id, and ids of bytes
// that a key syntax might give a meaning to.
func bounds(t *testing.T, s adapter.SessionStore) {
	longID := strings.Repeat("i", adapter.MaxSessionID)
	big := bytes.Repeat([]byte{0, 0xff, '{', '}'}, adapter.MaxSessionRecord/4)
	save(t, s, longID, big, longTTL)
	expectRecord(t, s, longID, big)

	odd := []string{"a", "a}", "{a}", "a*", "\x00\xff", "a b", "a:b"}
	for i, id := range odd {
		save(t, s, id, []byte(fmt.Sprint(i)), longTTL)
	}
	save(t, s, "empty", nil, longTTL)
	for i, id := range odd {
		expectRecord(t, s, id, []byte(fmt.Sprint(i)))
	}
	expectRecord(t, s, "empty", nil)
}

func refused(t *testing.T, s adapter.SessionStore) {
	longID := strings.Repeat("i", adapter.MaxSessionID+1)
	big := make([]byte, adapter.MaxSessionRecord+1)
	save(t, s, "kept", record, longTTL)
	take := func(ctx context.Context, id string) error { _, err := s.Take(ctx, id); return err }
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"save_of_an_empty_id", func(ctx context.Context) error { return s.Save(ctx, "", record, longTTL) }},
		{"save_of_a_long_id", func(ctx context.Context) error { return s.Save(ctx, longID, record, longTTL) }},
		{"save_of_a_large_record", func(ctx context.Context) error { return s.Save(ctx, "kept", big, longTTL) }},
		{"save_with_a_zero_ttl", func(ctx context.Context) error { return s.Save(ctx, "refused", record, 0) }},
		{"save_with_a_negative_ttl", func(ctx context.Context) error { return s.Save(ctx, "refused", record, -time.Second) }},
		{"take_of_an_empty_id", func(ctx context.Context) error { return take(ctx, "") }},
		{"take_of_a_long_id", func(ctx context.Context) error { return take(ctx, longID) }},
		{"touch_of_an_empty_id", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept", ""}, longTTL) }},
		{"touch_of_a_long_id", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept", longID}, longTTL) }},
		{"touch_with_a_zero_ttl", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept"}, 0) }},
		{"touch_with_a_negative_ttl", func(ctx context.Context) error { return s.Touch(ctx, []string{"kept"}, -time.Second) }},
		{"delete_of_an_empty_id", func(ctx context.Context) error { return s.Delete(ctx, "") }},
		{"delete_of_a_long_id", func(ctx context.Context) error { return s.Delete(ctx, longID) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(t.Context()); !errors.Is(err, adapter.ErrInvalidOptions) {
				t.Fatalf("got %v, want an error wrapping adapter.ErrInvalidOptions", err)
			}
		})
	}
	expectGone(t, s, "refused")
	expectRecord(t, s, "kept", record) // neither replaced nor expired
}

func canceled(t *testing.T, s adapter.SessionStore) {
	save(t, s, "s1", record, longTTL)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, takeErr := s.Take(ctx, "s1")
	for _, c := range []struct {
		method string
		err    error
	}{
		{"Save", s.Save(ctx, "s2", record, longTTL)},
		{"Take", takeErr},
		{"Touch", s.Touch(ctx, []string{"s1"}, longTTL)},
		{"Delete", s.Delete(ctx, "s1")},
	} {
		if !errors.Is(c.err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", c.method, c.err)
		}
	}
}

func save(t *testing.T, s adapter.SessionStore, id string, rec []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Save(t.Context(), id, rec, ttl); err != nil {
		t.Fatalf("Save(%q): %v", id, err)
	}
}

// expectRecord takes id's record, which must be want.
func expectRecord(t *testing.T, s adapter.SessionStore, id string, want []byte) {
	t.Helper()
	got, err := s.Take(t.Context(), id)
	if err != nil {
		t.Fatalf("Take(%q): %v, want its record", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Take(%q) = %.40q (%d bytes), want %.40q (%d bytes)", id, got, len(got), want, len(want))
	}
}

// expectGone checks that id has no record.
func expectGone(t *testing.T, s adapter.SessionStore, id string) {
	t.Helper()
	if got, err := s.Take(t.Context(), id); !errors.Is(err, adapter.ErrNoSession) {
		t.Fatalf("Take(%q) = %.40q, %v; want ErrNoSession", id, got, err)
	}
}

// saveProbes saves the probe records with ttl and returns their ids in the
// order saved.
func saveProbes(t *testing.T, s adapter.SessionStore, ttl time.Duration) []string {
	t.Helper()
	ids := make([]string, probes)
	for i := range ids {
		ids[i] = fmt.Sprintf("probe-%d", i)
		save(t, s, ids[i], record, ttl)
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
		_, err := s.Take(t.Context(), ids[i])
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
