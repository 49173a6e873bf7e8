package memory

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wsgate/wsgate/adapter"
)

// MaxIdempotencyKeys bounds the idempotency keys a Bus remembers at once.
// A publish that would remember one more fails with ErrTooManyKeys rather
// than forget a key early and risk delivering a retry twice.
const MaxIdempotencyKeys = 1 << 20

// sweepEvery is how often the sweeper drops expired streams, entries and
// keys. Reads and publishes also expire what they touch, so a sweep only
// bounds how long an abandoned topic holds memory.
const sweepEvery = time.Second

// shrinkAbove is the map size above which a map that has emptied to a
// quarter of its peak is rebuilt: Go maps never give back their buckets.
const shrinkAbove = 1024

// ErrTooManyKeys is returned by Publish when the Bus already remembers
// MaxIdempotencyKeys idempotency keys.
var ErrTooManyKeys = errors.New("memory: too many idempotency keys")

// store holds a Bus's streams and idempotency keys.
//
// Lock order: stream.mu, then mu, then keysMu. The sweeper, which holds mu,
// only TryLocks a stream, so that it never waits on a delivery in progress
// and never inverts that order.
type store struct {
	now func() time.Time

	mu       sync.Mutex // guards streams, peak, sweeping and closed
	streams  map[string]*stream
	peak     int  // largest len(streams) since the map was last rebuilt
	sweeping bool // the sweeper goroutine runs
	closed   bool
	stop     chan struct{} // closed by close
	done     chan struct{} // closed when the sweeper returns; nil if none ran

	keysMu   sync.Mutex // guards keys and keysPeak
	keys     map[idemKey]idemEntry
	keysPeak int
}

type idemKey struct{ topic, key string }

type idemEntry struct {
	pos     adapter.Position
	expires time.Time
}

// stream is one topic's position and entries. Its lock is held while a
// publish assigns the offset and delivers, so that delivery order is
// offset order.
type stream struct {
	mu      sync.Mutex // guards every field below
	epoch   string
	top     uint64
	entries []entry // consecutive offsets ending at top, oldest first
	ttl     time.Duration
	lastPub time.Time // the entries expire ttl after it
	metaExp time.Time // the position is forgotten after it
	gone    bool      // removed from the store: look the topic up again
}

type entry struct {
	offset  uint64
	at      time.Time
	payload []byte
}

func newStore() *store {
	return &store{
		now:     time.Now,
		streams: make(map[string]*stream),
		keys:    make(map[idemKey]idemEntry),
		stop:    make(chan struct{}),
	}
}

// newStream returns a stream with a fresh epoch whose position lives
// metaTTL from now.
func newStream(now time.Time, metaTTL time.Duration) *stream {
	return &stream{epoch: adapter.NewEpoch(), metaExp: now.Add(metaTTL)}
}

// lockStream returns topic's stream, locked, creating it (with a position
// that lives metaTTL) when create is set. It returns nil when the topic has
// no stream and create is not set, or when the store is closed.
func (st *store) lockStream(topic string, create bool, metaTTL time.Duration) *stream {
	for {
		st.mu.Lock()
		if st.closed {
			st.mu.Unlock()
			return nil
		}
		s := st.streams[topic]
		if s == nil {
			if !create {
				st.mu.Unlock()
				return nil
			}
			s = newStream(st.now(), metaTTL)
			st.streams[topic] = s
			st.peak = max(st.peak, len(st.streams))
			st.startSweeper()
		}
		st.mu.Unlock()
		s.mu.Lock()
		now := st.now()
		if !s.gone && !create && now.After(s.metaExp) {
			// Forgotten, as an expired Redis key is; the sweeper removes it.
			s.mu.Unlock()
			return nil
		}
		if !s.gone {
			s.expire(now)
			return s
		}
		s.mu.Unlock()
	}
}

// expire applies the stream's TTLs at now: a forgotten position starts a
// new epoch, as a new Redis key would; expired entries are dropped.
func (s *stream) expire(now time.Time) {
	if now.After(s.metaExp) {
		s.epoch, s.top, s.entries = adapter.NewEpoch(), 0, nil
		return
	}
	if now.Sub(s.lastPub) > s.ttl {
		s.entries = nil
		return
	}
	i := 0
	for i < len(s.entries) && now.Sub(s.entries[i].at) > s.ttl {
		i++
	}
	s.dropFront(i)
}

// dropFront drops the n oldest entries. The slots are cleared so that the
// array does not pin their payloads; append moves the rest to a new array
// when it runs out of room, so the array stays within twice the stream's
// size and no publish copies the whole stream.
func (s *stream) dropFront(n int) {
	clear(s.entries[:n])
	s.entries = s.entries[n:]
}

// append adds payload at offset top+1 and trims the stream to o.Size.
func (s *stream) append(now time.Time, payload []byte, o adapter.StreamOptions) adapter.Position {
	s.top++
	if n := len(s.entries) - o.Size + 1; n > 0 {
		s.dropFront(n)
	}
	s.entries = append(s.entries, entry{offset: s.top, at: now, payload: payload})
	s.ttl, s.lastPub = o.TTL, now
	s.metaExp = laterOf(s.metaExp, now.Add(o.MetaTTL))
	return adapter.Position{Offset: s.top, Epoch: s.epoch}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// publish appends payload to topic's stream and calls deliver with it,
// both under the stream's lock. An idempotency key already used returns its
// first position and adapter.ErrDuplicate.
func (st *store) publish(topic string, payload []byte, o adapter.PublishOptions, deliver func(adapter.Message)) (adapter.Position, error) {
	s := st.lockStream(topic, true, o.Stream.MetaTTL)
	if s == nil {
		return adapter.Position{}, adapter.ErrClosed
	}
	defer s.mu.Unlock()
	now := st.now()
	next := adapter.Position{Offset: s.top + 1, Epoch: s.epoch}
	if o.IdempotencyKey != "" {
		if pos, err := st.claimKey(topic, o, next, now); err != nil {
			return pos, err
		}
	}
	// The caller keeps its buffer; the stream and every handler share this
	// copy, read-only.
	payload = append([]byte(nil), payload...)
	pos := s.append(now, payload, o.Stream)
	deliver(adapter.Message{Topic: topic, Payload: payload, Pos: pos})
	return pos, nil
}

// claim remembers o's idempotency key for topic with pos, or returns the
// position it was first used with and adapter.ErrDuplicate.
func (st *store) claim(topic string, o adapter.PublishOptions, pos adapter.Position, now time.Time) (adapter.Position, error) {
	k := idemKey{topic, o.IdempotencyKey}
	st.keysMu.Lock()
	defer st.keysMu.Unlock()
	if e, ok := st.keys[k]; ok && now.Before(e.expires) {
		return e.pos, adapter.ErrDuplicate
	}
	if len(st.keys) >= MaxIdempotencyKeys {
		return adapter.Position{}, fmt.Errorf("memory: publish %q: %w", topic, ErrTooManyKeys)
	}
	st.keys[k] = idemEntry{pos: pos, expires: now.Add(o.IdempotencyTTL)}
	st.keysPeak = max(st.keysPeak, len(st.keys))
	return adapter.Position{}, nil
}

// claimKey is claim followed by starting the sweeper, which takes mu and so
// may not happen under keysMu.
func (st *store) claimKey(topic string, o adapter.PublishOptions, pos adapter.Position, now time.Time) (adapter.Position, error) {
	p, err := st.claim(topic, o, pos, now)
	if err == nil {
		st.mu.Lock()
		st.startSweeper()
		st.mu.Unlock()
	}
	return p, err
}

// history answers q for topic; see adapter.Broker.History.
func (st *store) history(topic string, q adapter.HistoryQuery) (adapter.HistoryResult, error) {
	s := st.lockStream(topic, q.Stream.Enabled(), q.Stream.MetaTTL)
	if s == nil {
		st.mu.Lock()
		closed := st.closed
		st.mu.Unlock()
		if closed {
			return adapter.HistoryResult{}, adapter.ErrClosed
		}
		return adapter.HistoryResult{}, nil
	}
	defer s.mu.Unlock()
	now := st.now()
	if q.Stream.Enabled() {
		// Clients that hold this position keep it alive.
		s.metaExp = laterOf(s.metaExp, now.Add(q.Stream.MetaTTL))
	}
	res := adapter.HistoryResult{Top: adapter.Position{Offset: s.top, Epoch: s.epoch}}
	since := q.Since
	if since.Epoch != s.epoch || since.Offset > s.top {
		return res, nil
	}
	missed := s.top - since.Offset
	if q.Limit > 0 && missed > uint64(q.Limit) {
		return res, nil
	}
	if missed == 0 {
		res.Entries, res.Complete = []adapter.Entry{}, true
		return res, nil
	}
	// expire dropped the entries older than the stream's TTL; a caller that
	// passes a shorter one is held to it as well.
	first := len(s.entries) - int(min(missed, uint64(len(s.entries))))
	if len(s.entries) == 0 || s.entries[first].offset != since.Offset+1 {
		return res, nil
	}
	if q.Stream.Enabled() && now.Sub(s.entries[first].at) > q.Stream.TTL {
		return res, nil
	}
	res.Entries = make([]adapter.Entry, 0, missed)
	for _, e := range s.entries[first:] {
		res.Entries = append(res.Entries, adapter.Entry{Offset: e.offset, Payload: e.payload})
	}
	res.Complete = true
	return res, nil
}

// erase forgets topic's stream.
func (st *store) erase(topic string) {
	st.mu.Lock()
	s := st.streams[topic]
	delete(st.streams, topic)
	st.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.gone, s.entries = true, nil
		s.mu.Unlock()
	}
}

// startSweeper starts the sweeper if it is not running. Called with mu held.
func (st *store) startSweeper() {
	if st.sweeping || st.closed {
		return
	}
	st.sweeping = true
	st.done = make(chan struct{})
	go st.sweepLoop(st.done)
}

// sweepLoop runs while the store holds anything: it returns once a sweep
// leaves it empty (the next stream or key starts it again) or at close.
func (st *store) sweepLoop(done chan struct{}) {
	defer close(done)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
		}
		if st.sweep() {
			return
		}
	}
}

// sweep drops what has expired and reports whether the sweeper may stop,
// in which case it is marked stopped.
func (st *store) sweep() (empty bool) {
	now := st.now()
	st.keysMu.Lock()
	for k, e := range st.keys {
		if !now.Before(e.expires) {
			delete(st.keys, k)
		}
	}
	st.keys, st.keysPeak = shrink(st.keys, st.keysPeak)
	nkeys := len(st.keys)
	st.keysMu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	for topic, s := range st.streams {
		if !s.mu.TryLock() {
			continue // delivering: certainly not expired
		}
		if now.After(s.metaExp) {
			s.gone, s.entries = true, nil
			delete(st.streams, topic)
		} else {
			s.expire(now)
		}
		s.mu.Unlock()
	}
	st.streams, st.peak = shrink(st.streams, st.peak)
	if len(st.streams) > 0 {
		return false
	}
	// A key claimed since keysMu was let go starts no sweeper while this
	// one still runs; check again under mu, which claim takes to start one.
	st.keysMu.Lock()
	nkeys = len(st.keys)
	st.keysMu.Unlock()
	if nkeys > 0 {
		return false
	}
	st.sweeping = false
	return true
}

// shrink rebuilds m when it has emptied to a quarter of its peak, so that
// a burst of topics does not pin memory for the life of the process.
func shrink[K comparable, V any](m map[K]V, peak int) (map[K]V, int) {
	if peak <= shrinkAbove || len(m) > peak/4 {
		return m, peak
	}
	n := make(map[K]V, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n, len(n)
}

// close stops the sweeper, waits for it and forgets everything.
func (st *store) close() {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.closed = true
	close(st.stop)
	done := st.done
	st.streams, st.peak = make(map[string]*stream), 0
	st.mu.Unlock()
	if done != nil {
		<-done
	}
	st.keysMu.Lock()
	st.keys, st.keysPeak = make(map[idemKey]idemEntry), 0
	st.keysMu.Unlock()
}

// Usage is what a Bus holds in its streams and idempotency keys.
type Usage struct {
	// Streams is the number of topics with a stream or a position.
	Streams int
	// Entries is the number of entries in every stream.
	Entries int
	// Keys is the number of idempotency keys remembered.
	Keys int
}

func (st *store) usage() Usage {
	var u Usage
	st.mu.Lock()
	streams := make([]*stream, 0, len(st.streams))
	for _, s := range st.streams {
		streams = append(streams, s)
	}
	st.mu.Unlock()
	u.Streams = len(streams)
	for _, s := range streams {
		s.mu.Lock()
		u.Entries += len(s.entries)
		s.mu.Unlock()
	}
	st.keysMu.Lock()
	u.Keys = len(st.keys)
	st.keysMu.Unlock()
	return u
}
