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

// DefaultMaxSessions is the number of records a Sessions holds at most
// when SessionsOptions.MaxRecords is 0.
const DefaultMaxSessions = 100_000

// Sweeping bounds: a Save drops at most lazyExpire expired records, the
// soonest first, so that a steady stream of writes keeps up with expiry on
// its own; the sweeper drops the rest at most sweepBatch per hold of the
// lock, so that a mass expiry never stalls a Take for long.
const (
	lazyExpire = 4
	sweepBatch = 1024
)

// ErrTooManySessions is returned by Sessions.Save for a new id while the
// store already holds MaxRecords live records.
var ErrTooManySessions = errors.New("memory: too many sessions")

// SessionsOptions configures NewSessions. The zero value is valid.
type SessionsOptions struct {
	// MaxRecords bounds the live records held at once; a Save of a new id
	// beyond it fails with ErrTooManySessions, while replacing a record
	// still succeeds. Socket.IO's recovery keeps one record per connection,
	// live or ended within its MaxDisconnectionDuration, so this also
	// bounds the connections it can resume. Zero or negative:
	// DefaultMaxSessions. Records are at most adapter.MaxSessionRecord bytes
	// each, so the bytes held are at most MaxRecords times that.
	MaxRecords int
}

// Sessions is the in-process adapter.SessionStore, for one node: a
// record does not survive the process, so it only lets a client resume on
// the node it left (a reconnect after a network drop), not on another.
//
// Records live in a map, and in a heap ordered by expiry that lets an
// expired record be found without a scan. An expired record is invisible
// from the moment it expires. It is dropped by the next Save (a few at a
// time), or by a sweeper goroutine that runs every second while the store
// holds anything and stops by itself once it is empty; the map and the
// heap are rebuilt smaller once they have emptied to a quarter of their
// peak, since Go never shrinks them. Close stops the sweeper at once.
// Safe for concurrent use.
type Sessions struct {
	now func() time.Time // time.Now; tests step a fake clock
	max int

	mu       sync.Mutex // guards every field below
	records  map[string]*session
	byExpiry expiryHeap // the records of the map, soonest expiry first
	peak     int        // largest len(records) since the map was last rebuilt
	sweeping bool       // the sweeper goroutine runs
	closed   bool
	stop     chan struct{} // closed by Close
	done     chan struct{} // closed when the sweeper returns; nil if none ran
}

var _ adapter.SessionStore = (*Sessions)(nil)

type session struct {
	id      string
	record  []byte
	expires time.Time
	index   int // position in Sessions.byExpiry
}

// NewSessions returns an empty store. It starts no goroutine: the sweeper
// starts with the first record.
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
func (s *Sessions) Save(ctx context.Context, id string, record []byte, ttl time.Duration) error {
	if err := checkSession(id, record, ttl); err != nil {
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
	now := s.now()
	s.expire(now, lazyExpire)
	if r := s.records[id]; r != nil {
		r.record, r.expires = record, now.Add(ttl)
		heap.Fix(&s.byExpiry, r.index)
		return nil
	}
	if len(s.records) >= s.max {
		// Expired records do not count against the limit.
		s.expire(now, len(s.records))
		if len(s.records) >= s.max {
			return fmt.Errorf("%w: %d live records", ErrTooManySessions, s.max)
		}
	}
	r := &session{id: id, record: record, expires: now.Add(ttl)}
	s.records[id] = r
	heap.Push(&s.byExpiry, r)
	s.peak = max(s.peak, len(s.records))
	s.startSweeper()
	return nil
}

// Take implements adapter.SessionStore.
func (s *Sessions) Take(ctx context.Context, id string) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, adapter.ErrClosed
	}
	r := s.records[id]
	if r == nil {
		return nil, adapter.ErrNoSession
	}
	s.remove(r)
	if !s.now().Before(r.expires) {
		return nil, adapter.ErrNoSession
	}
	return r.record, nil
}

// Touch implements adapter.SessionStore. It checks every id before it
// changes anything.
func (s *Sessions) Touch(ctx context.Context, ids []string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
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
		r := s.records[id]
		switch {
		case r == nil:
		case !now.Before(r.expires):
			s.remove(r) // expired: as if it were not there
		default:
			r.expires = now.Add(ttl)
			heap.Fix(&s.byExpiry, r.index)
		}
	}
	return nil
}

// Delete implements adapter.SessionStore.
func (s *Sessions) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
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
	if r := s.records[id]; r != nil {
		s.remove(r)
	}
	return nil
}

// Len returns the number of records held, the expired ones that are not
// swept yet included.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// Close stops the sweeper, waits for it and forgets every record. Every
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

// remove drops r from the map and the heap. Called with mu held.
func (s *Sessions) remove(r *session) {
	delete(s.records, r.id)
	heap.Remove(&s.byExpiry, r.index)
}

// expire drops at most limit records expired at now, the soonest first,
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
// leaves it empty (the next Save starts it again) or at Close.
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

// sweep drops every expired record, letting go of the lock between
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

// checkSession checks the arguments of Save against the bounds of
// adapter.SessionStore.
func checkSession(id string, record []byte, ttl time.Duration) error {
	if err := checkID(id); err != nil {
		return err
	}
	if len(record) > adapter.MaxSessionRecord {
		return fmt.Errorf("memory: session record of %d bytes, over %d: %w",
			len(record), adapter.MaxSessionRecord, adapter.ErrInvalidOptions)
	}
	return checkTTL(ttl)
}

// checkID refuses an empty or overlong id. The error does not quote the
// id: it is the client's secret.
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("memory: empty session id: %w", adapter.ErrInvalidOptions)
	case len(id) > adapter.MaxSessionID:
		return fmt.Errorf("memory: session id of %d bytes, over %d: %w",
			len(id), adapter.MaxSessionID, adapter.ErrInvalidOptions)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("memory: session TTL %v is not positive: %w", ttl, adapter.ErrInvalidOptions)
	}
	return nil
}
