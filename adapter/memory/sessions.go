package memory

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wsgate/wsgate/adapter"
)

// DefaultMaxSessions is the number of entries (records and tombstones) a
// Sessions holds at most when SessionsOptions.MaxRecords is 0.
const DefaultMaxSessions = 100_000

// Sweeping bounds: a Save or a Delete drops at most lazyExpire expired
// entries, the soonest first, so that a steady stream of writes keeps up
// with expiry on its own; the sweeper drops the rest at most sweepBatch per hold of the
// lock, so that a mass expiry never stalls a Take for long.
const (
	lazyExpire = 4
	sweepBatch = 1024
)

// ErrTooManySessions is returned by Sessions.Save, and by Sessions.Delete
// which leaves a tombstone, for a new id while the store already holds
// MaxRecords live entries.
var ErrTooManySessions = errors.New("memory: too many sessions")

// SessionsOptions configures NewSessions. The zero value is valid.
type SessionsOptions struct {
	// MaxRecords bounds the live entries held at once, records and the
	// tombstones that Take and Delete leave alike; a Save (or a Delete)
	// of a new id beyond it fails with ErrTooManySessions, while replacing
	// an entry still succeeds. Socket.IO's recovery keeps one record per
	// connection, live or ended within its MaxDisconnectionDuration, so
	// this also bounds the connections it can resume. Zero or negative:
	// DefaultMaxSessions. Records are at most adapter.MaxSessionRecord
	// bytes each, so the bytes held are at most MaxRecords times that.
	MaxRecords int
}

// Sessions is the in-process adapter.SessionStore, for one node: a
// record does not survive the process, so it only lets a client resume on
// the node it left (a reconnect after a network drop), not on another.
//
// Entries live in a map, and in a heap ordered by expiry that lets an
// expired entry be found without a scan. An entry is a record or a
// tombstone, which holds only the version that fences the writers of its
// id; both expire alike and count alike toward MaxRecords, so that the
// tombstones of a burst of ended connections stay bounded. An expired
// entry is invisible from the moment it expires. It is dropped by the next
// Save or Delete (a few at a time), or by a sweeper goroutine that runs every second
// while the store holds anything and stops by itself once it is empty; the
// map and the heap are rebuilt smaller once they have emptied to a quarter
// of their peak, since Go never shrinks them. Close stops the sweeper at
// once.
//
// A version of math.MaxUint64 is refused with adapter.ErrInvalidOptions:
// the tombstone that follows it would have no version above it. Safe for
// concurrent use.
type Sessions struct {
	now func() time.Time // time.Now; tests step a fake clock
	max int

	mu       sync.Mutex // guards every field below
	records  map[string]*session
	byExpiry expiryHeap // the entries of the map, soonest expiry first
	peak     int        // largest len(records) since the map was last rebuilt
	sweeping bool       // the sweeper goroutine runs
	closed   bool
	stop     chan struct{} // closed by Close
	done     chan struct{} // closed when the sweeper returns; nil if none ran
}

var _ adapter.SessionStore = (*Sessions)(nil)

// session is one entry: a record, or a tombstone (tomb, and record nil).
type session struct {
	id      string
	record  []byte
	version uint64
	tomb    bool
	expires time.Time
	index   int // position in Sessions.byExpiry
}

// NewSessions returns an empty store. It starts no goroutine: the sweeper
// starts with the first entry.
func NewSessions(opts SessionsOptions) *Sessions {
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = DefaultMaxSessions
	}
	return &Sessions{
		now:     time.Now,
		max:     opts.MaxRecords,
		records: make(map[string]*session),
		stop:    make(chan struct{}),
	}
}

// Save implements adapter.SessionStore. It keeps a copy of record, and
// fails with ErrTooManySessions when id is new and the store is full.
func (s *Sessions) Save(ctx context.Context, id string, v uint64, record []byte, ttl time.Duration) error {
	if err := adapter.CheckSession(id, v, record, ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Copied outside the lock: the caller keeps its buffer.
	record = append([]byte(nil), record...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return adapter.ErrClosed
	}
	return s.put(id, v, record, false, ttl)
}

// Take implements adapter.SessionStore.
func (s *Sessions) Take(ctx context.Context, id string, ttl time.Duration) ([]byte, uint64, error) {
	if err := adapter.CheckSessionID(id); err != nil {
		return nil, 0, err
	}
	if err := adapter.CheckSessionTTL(ttl); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, adapter.ErrClosed
	}
	now := s.now()
	r := s.live(id, now)
	if r == nil || r.tomb {
		return nil, 0, adapter.ErrNoSession
	}
	record, v := r.record, r.version
	// A record's version is below math.MaxUint64: Save refuses that one.
	s.set(r, v+1, nil, true, now.Add(ttl))
	return record, v, nil
}

// Touch implements adapter.SessionStore. It checks every id before it
// changes anything.
func (s *Sessions) Touch(ctx context.Context, ids []string, ttl time.Duration) error {
	if err := adapter.CheckSessionTTL(ttl); err != nil {
		return err
	}
	for _, id := range ids {
		if err := adapter.CheckSessionID(id); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return adapter.ErrClosed
	}
	now := s.now()
	for _, id := range ids {
		// A tombstone keeps the TTL it was given: a Touch must not keep
		// the fence of an ended session alive for as long as records.
		if r := s.live(id, now); r != nil && !r.tomb {
			r.expires = now.Add(ttl)
			heap.Fix(&s.byExpiry, r.index)
		}
	}
	return nil
}

// Delete implements adapter.SessionStore. Like Save, it fails with
// ErrTooManySessions when id is new and the store is full: it would
// otherwise leave no tombstone to fence a late writer with.
func (s *Sessions) Delete(ctx context.Context, id string, v uint64, ttl time.Duration) error {
	if err := adapter.CheckSessionID(id); err != nil {
		return err
	}
	if err := adapter.CheckSessionVersion(v); err != nil {
		return err
	}
	if err := adapter.CheckSessionTTL(ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return adapter.ErrClosed
	}
	return s.put(id, v, nil, true, ttl)
}

// Len returns the number of entries held: records, tombstones, and the
// expired ones that are not swept yet.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// Close stops the sweeper, waits for it and forgets every entry. Every
// method then fails with adapter.ErrClosed. Close is idempotent.
func (s *Sessions) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	done := s.done
	s.records, s.byExpiry, s.peak = nil, nil, 0
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	return nil
}

// put writes the entry of id that Save (a record of version v) and
// Delete (a tombstone of version v+1) leave, unless id holds a version
// above v. Called with mu held.
func (s *Sessions) put(id string, v uint64, record []byte, tomb bool, ttl time.Duration) error {
	now := s.now()
	s.expire(now, lazyExpire)
	next := v
	if tomb {
		next = v + 1 // checkVersion keeps v below math.MaxUint64
	}
	if r := s.live(id, now); r != nil {
		if r.version > v {
			return adapter.ErrStaleSession
		}
		s.set(r, next, record, tomb, now.Add(ttl))
		return nil
	}
	if len(s.records) >= s.max {
		// Expired entries do not count against the limit.
		s.expire(now, len(s.records))
		if len(s.records) >= s.max {
			return fmt.Errorf("%w: %d live entries", ErrTooManySessions, s.max)
		}
	}
	r := &session{id: id, record: record, version: next, tomb: tomb, expires: now.Add(ttl)}
	s.records[id] = r
	heap.Push(&s.byExpiry, r)
	s.peak = max(s.peak, len(s.records))
	s.startSweeper()
	return nil
}

// live returns the entry of id unless it has none or it has expired at
// now; an expired entry is dropped, as if it were not there. Called with
// mu held.
func (s *Sessions) live(id string, now time.Time) *session {
	r := s.records[id]
	if r != nil && !now.Before(r.expires) {
		s.remove(r)
		return nil
	}
	return r
}

// set replaces the content of the entry r. Called with mu held.
func (s *Sessions) set(r *session, v uint64, record []byte, tomb bool, expires time.Time) {
	r.version, r.record, r.tomb, r.expires = v, record, tomb, expires
	heap.Fix(&s.byExpiry, r.index)
}

// remove drops r from the map and the heap. Called with mu held.
func (s *Sessions) remove(r *session) {
	delete(s.records, r.id)
	heap.Remove(&s.byExpiry, r.index)
}

// expire drops at most limit entries expired at now, the soonest first,
// and reports how many it dropped. Called with mu held.
func (s *Sessions) expire(now time.Time, limit int) int {
	n := 0
	for n < limit && len(s.byExpiry) > 0 && !now.Before(s.byExpiry[0].expires) {
		r := heap.Pop(&s.byExpiry).(*session)
		delete(s.records, r.id)
		n++
	}
	return n
}

// startSweeper starts the sweeper if it is not running. Called with mu held.
func (s *Sessions) startSweeper() {
	if s.sweeping || s.closed {
		return
	}
	s.sweeping = true
	s.done = make(chan struct{})
	go s.sweepLoop(s.done)
}

// sweepLoop runs while the store holds anything: it returns once a sweep
// leaves it empty (the next new entry starts it again) or at Close.
func (s *Sessions) sweepLoop(done chan struct{}) {
	defer close(done)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.sweep()
		s.mu.Lock()
		empty := len(s.records) == 0
		if empty {
			s.sweeping = false
		}
		s.mu.Unlock()
		if empty {
			return
		}
	}
}

// sweep drops every expired entry, letting go of the lock between
// batches, then gives back the memory of a map and a heap that have
// emptied to a quarter of their peak.
func (s *Sessions) sweep() {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if s.expire(s.now(), sweepBatch) < sweepBatch {
			s.records, s.peak = shrink(s.records, s.peak)
			s.byExpiry = s.byExpiry.shrink()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// expiryHeap implements heap.Interface over records by expiry, keeping
// each record's index current so that heap.Fix and heap.Remove find it.
type expiryHeap []*session

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }

func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *expiryHeap) Push(x any) {
	r := x.(*session)
	r.index = len(*h)
	*h = append(*h, r)
}

func (h *expiryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil // the array must not pin a dropped record
	*h = old[:len(old)-1]
	return r
}

// shrink returns h in a smaller array when it fills a quarter of a large
// one, as shrink does for maps.
func (h expiryHeap) shrink() expiryHeap {
	if cap(h) <= shrinkAbove || len(h) > cap(h)/4 {
		return h
	}
	return append(expiryHeap(nil), h...)
}
