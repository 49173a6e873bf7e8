package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Reconnect backoff bounds. The first retry is quick because most losses
// are a restart or a killed connection; the cap keeps a long outage from
// hammering Redis.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	// subscribeBatch is how many channels one SUBSCRIBE carries when a
	// session resubscribes, and how many such commands share a round trip.
	subscribeBatch = 512
	pipelineDepth  = 16
)

var (
	errConnLost = errors.New("pub/sub connection lost")
	errRecycled = fmt.Errorf("%w: pub/sub connection recycled", ErrProbeLate)
	errNoNode   = errors.New("node not known to the cluster client")
)

// shard is one pub/sub connection: to the single Redis, or to one cluster
// master for the topics whose slots it serves. Its supervisor goroutine
// (run) owns the connection's lifecycle: connect, subscribe every wanted
// topic, wait for loss, back off, repeat until stopped.
type shard struct {
	b    *Broker
	addr string // cluster master address; "" for the single Redis

	recycleCh chan struct{} // capacity 1: asks the session to reconnect
	stop      chan struct{} // closed when the topology drops this shard
	done      chan struct{} // closed when run returns
	firstUp   chan struct{} // closed at the first ready session

	mu        sync.Mutex              // guards every field below
	conn      rueidis.DedicatedClient // nil while down
	ready     bool                    // every wanted topic is subscribed on conn
	everUp    bool
	lastErr   error
	probeCh   string // this session's probe channel
	probeSent uint64 // sequence of the last probe published
	probeRecv uint64 // highest sequence received back
	// probeFailSince is when probes started failing to publish (zero while
	// they publish): a frozen Redis shows here, not as a late probe.
	probeFailSince time.Time
	probeAt        time.Time
}

func newShard(b *Broker, addr string) *shard {
	return &shard{
		b:         b,
		addr:      addr,
		recycleCh: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		firstUp:   make(chan struct{}),
		lastErr:   errors.New("connecting"),
	}
}

func (s *shard) name() string {
	if s.addr == "" {
		return s.b.opts.Addrs[0]
	}
	return s.addr
}

// liveConn returns the current connection, or nil while down.
func (s *shard) liveConn() rueidis.DedicatedClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// recycle asks the supervisor to drop the connection and start over.
func (s *shard) recycle() {
	select {
	case s.recycleCh <- struct{}{}:
	default:
	}
}

func (s *shard) stopped() bool {
	select {
	case <-s.stop:
		return true
	case <-s.b.stop:
		return true
	default:
		return false
	}
}

func (s *shard) run() {
	defer close(s.done)
	backoff := minBackoff
	for !s.stopped() {
		start := time.Now()
		wasReady, err := s.session()
		if s.stopped() {
			return
		}
		s.b.log.Warn("redis_pubsub_down", slog.String("addr", s.name()), slog.String("error", err.Error()))
		s.b.triggerRefresh() // in a cluster, a lost master may have failed over
		if wasReady && time.Since(start) > maxBackoff {
			backoff = minBackoff
		}
		// Jitter spreads the reconnects of many nodes after a shared outage.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.stop:
		case <-s.b.stop:
		}
		t.Stop()
	}
}

// session runs one connection from dial to loss. wasReady reports whether
// it got as far as having every wanted topic subscribed.
func (s *shard) session() (wasReady bool, err error) {
	client, err := s.b.nodeClient(s.addr)
	if err != nil {
		s.setDown(err)
		return false, err
	}
	probeCh := s.b.probeChannel(s)
	dc, release := client.Dedicate()
	// The hooks run on rueidis' reader goroutine: they check the message,
	// then only hand off to the bounded delivery queue or record a probe,
	// and never block.
	errc := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			if m.Channel == probeCh {
				s.probeArrived(m.Channel, m.Message)
				return
			}
			if pos, payload, ok := s.b.open(m.Channel, m.Message); ok {
				s.b.enqueue(m.Channel, payload, pos)
			}
		},
		OnSubscription: func(ev rueidis.PubSubSubscription) {
			// Redis drops sharded subscriptions of a slot that migrates;
			// if we still want the channel, the slot map is stale.
			if ev.Kind == "sunsubscribe" && s.b.wanted(ev.Channel, probeCh) {
				s.b.triggerRefresh()
				s.recycle()
			}
		},
	})
	defer func() {
		s.setDown(err)
		dc.Close()
		release()
		// The hooks are done once errc is closed; rueidis closes it when
		// the connection goes back to the pool. Bounded all the same.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		for {
			select {
			case _, ok := <-errc:
				if ok {
					continue
				}
			case <-t.C:
			}
			return
		}
	}()

	channels := s.attach(dc, probeCh)
	if err = s.subscribeAll(dc, channels); err != nil {
		return false, err
	}
	s.markReady(dc, channels)
	select {
	case <-s.firstUp:
	default:
		close(s.firstUp)
	}

	select {
	case e, ok := <-errc:
		if !ok || e == nil {
			e = errConnLost
		}
		return true, e
	case <-s.recycleCh:
		return true, errRecycled
	case <-s.stop:
		return true, ErrUnavailable
	case <-s.b.stop:
		return true, ErrUnavailable
	}
}

// attach makes dc the shard's connection and returns the channels to
// subscribe on it. It holds the broker's lock so that a Subscribe either
// happened before (its topic is in the snapshot) or sees dc and subscribes
// on it itself; SUBSCRIBE is idempotent, so both is harmless.
func (s *shard) attach(dc rueidis.DedicatedClient, probeCh string) []string {
	b := s.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	s.mu.Lock()
	s.conn, s.ready, s.probeCh = dc, false, probeCh
	s.mu.Unlock()
	channels := make([]string, 0, 1+len(b.topics))
	if probeCh != "" {
		channels = append(channels, probeCh)
	}
	for topic := range b.topics {
		ch := b.opts.Prefix + topic
		if b.route.shardFor(ch) == s {
			channels = append(channels, ch)
		}
	}
	return channels
}

// subscribeAll subscribes channels in pipelined batches. In a cluster, one
// SSUBSCRIBE may only name channels of one slot.
func (s *shard) subscribeAll(dc rueidis.DedicatedClient, channels []string) error {
	cmds := s.b.subscribeCmds(dc, channels, false)
	for len(cmds) > 0 {
		n := min(len(cmds), pipelineDepth)
		ctx, cancel := context.WithTimeout(context.Background(), s.b.opts.PublishTimeout)
		results := dc.DoMulti(ctx, cmds[:n]...)
		cancel()
		for _, r := range results {
			if err := r.Error(); err != nil {
				return err
			}
		}
		cmds = cmds[n:]
	}
	return nil
}

// markReady declares the session complete, then removes subscriptions
// that were unsubscribed while the snapshot was being subscribed.
func (s *shard) markReady(dc rueidis.DedicatedClient, channels []string) {
	b := s.b
	var stale []string
	b.mu.RLock()
	for _, ch := range channels {
		if ch == s.probeCh {
			continue
		}
		if _, ok := b.topics[ch[len(b.opts.Prefix):]]; !ok || b.route.shardFor(ch) != s {
			stale = append(stale, ch)
		}
	}
	s.mu.Lock()
	again := s.everUp
	s.ready, s.everUp, s.lastErr = true, true, nil
	s.probeRecv = s.probeSent // probes of the previous session cannot come back
	s.probeFailSince = time.Time{}
	s.mu.Unlock()
	b.mu.RUnlock()

	if again {
		b.stats.resubscribes.Add(1)
	}
	b.log.Info("redis_pubsub_ready", slog.String("addr", s.name()),
		slog.Int("topics", len(channels)-1), slog.Bool("resubscribed", again))
	if len(stale) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
		dc.DoMulti(ctx, b.subscribeCmds(dc, stale, true)...)
		cancel()
	}
	// A first probe right away shows, within one interval, whether the new
	// subscription really delivers.
	b.sendProbe(s)
}

func (s *shard) setDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn, s.ready = nil, false
	if err != nil {
		s.lastErr = err
	}
}

// health reports why this shard cannot deliver, or nil.
func (s *shard) health(now time.Time, interval time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.conn == nil:
		return &shardError{addr: s.name(), kind: ErrUnavailable, detail: "pub/sub connection down", err: s.lastErr}
	case !s.ready:
		return &shardError{addr: s.name(), kind: ErrUnavailable, detail: "resubscribing"}
	case !s.probeFailSince.IsZero() && now.Sub(s.probeFailSince) > interval+s.b.opts.PublishTimeout:
		return &shardError{addr: s.name(), kind: ErrProbeLate,
			detail: "probes cannot be published since " + now.Sub(s.probeFailSince).Round(time.Millisecond).String()}
	case s.probeRecv < s.probeSent && now.Sub(s.probeAt) > interval:
		return &shardError{addr: s.name(), kind: ErrProbeLate,
			detail: "probe " + strconv.FormatUint(s.probeSent, 10) + " not back after " + now.Sub(s.probeAt).Round(time.Millisecond).String()}
	}
	return nil
}

// probeTick runs once per ProbeInterval: a probe still outstanding from the
// last tick means the subscription stopped delivering, so the connection is
// recycled; otherwise a new probe goes out.
func (s *shard) probeTick() {
	s.mu.Lock()
	up := s.conn != nil && s.ready
	// A probe sent moments ago (the first one after a reconnect) is not late
	// yet: only one that had a whole interval to come back is.
	late := s.probeRecv < s.probeSent && time.Since(s.probeAt) >= s.b.opts.ProbeInterval
	pending := s.probeRecv < s.probeSent
	sent := s.probeSent
	s.mu.Unlock()
	if !up {
		return
	}
	if late {
		s.b.log.Warn("redis_probe_late", slog.String("addr", s.name()), slog.Uint64("probe", sent))
		s.recycle()
		return
	}
	if !pending {
		s.b.sendProbe(s)
	}
}

// probeUnsent withdraws probe seq, which could not be published, and
// records since when publishing fails.
func (s *shard) probeUnsent(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.probeSent == seq && s.probeRecv < seq {
		s.probeRecv = seq
	}
	if s.probeFailSince.IsZero() {
		s.probeFailSince = s.probeAt
	}
}

// probePublished notes that a probe left.
func (s *shard) probePublished() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probeFailSince = time.Time{}
}

// nextProbe reserves the next probe sequence number.
func (s *shard) nextProbe() (channel string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probeSent++
	s.probeAt = time.Now()
	return s.probeCh, s.probeSent
}

func (s *shard) probeArrived(channel, msg string) {
	payload, ok := s.b.openSealed(channel, msg)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(string(payload), 10, 64)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.probeRecv = max(s.probeRecv, seq)
	s.mu.Unlock()
}

// shardError is the error Health returns for one connection.
type shardError struct {
	addr   string
	kind   error // ErrUnavailable or ErrProbeLate
	detail string
	err    error
}

func (e *shardError) Error() string {
	msg := e.kind.Error() + ": " + e.addr + ": " + e.detail
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *shardError) Unwrap() []error {
	if e.err == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.err}
}
