package redis

import (
	"sync"
	"time"
)

// replayBits is how many of a node's most recent sequence numbers a
// receiver remembers: messages of one node can arrive out of order, across
// the shards of a Redis Cluster, by up to this many. An older sequence
// number is refused as a replay. 4096 bits take 512 bytes per sending node.
const replayBits = 4096

// verdict is what replayGuard decides about a message with a valid tag.
type verdict uint8

const (
	fresh    verdict = iota // never seen: deliver
	stale                   // its time is outside the window
	replayed                // its (node, seq) was accepted before, or is too old to tell
)

// replayGuard refuses signed messages that were delivered before. Each
// message carries its sender's node id, a sequence number and the sender's
// clock; a receiver accepts a message once, and only while its time is
// within window of the receiver's clock.
//
// The window is what bounds the memory: per node, a high-water mark and a
// bitmap of the replayBits sequence numbers below it, dropped once the node
// has been silent for more than twice the window (a sweep once per window
// finds it, so within three). A message of a forgotten node is older than
// the window even if the sender's clock ran a whole window ahead, so it is
// refused as stale; only nodes holding the key create entries, because the
// tag is checked first.
//
// A receiver keeps this in memory only: in the first window after it
// starts, it cannot tell a replay of a message sent before it started.
type replayGuard struct {
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex // guards nodes and swept; held for a few map operations
	nodes     map[[8]byte]*seqWindow
	swept     time.Time // last sweep of idle nodes
	sweepEach time.Duration
}

// seqWindow is what a receiver remembers of one sending node.
type seqWindow struct {
	high uint64                  // highest sequence number accepted
	seen [replayBits / 64]uint64 // bit s%replayBits: s accepted, for s in (high-replayBits, high]
	last time.Time               // when a message of the node was last accepted
}

func newReplayGuard(window time.Duration) *replayGuard {
	return &replayGuard{
		window:    window,
		now:       time.Now,
		nodes:     make(map[[8]byte]*seqWindow),
		sweepEach: window,
	}
}

// check decides about h and, when it is fresh, remembers it.
func (g *replayGuard) check(h header) verdict {
	now := g.now()
	sent := time.UnixMilli(h.unix)
	if sent.Before(now.Add(-g.window)) || sent.After(now.Add(g.window)) {
		return stale
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.swept) >= g.sweepEach {
		g.sweep(now)
	}
	w := g.nodes[h.node]
	if w == nil {
		w = &seqWindow{}
		g.nodes[h.node] = w
	}
	if !w.accept(h.seq) {
		return replayed
	}
	w.last = now
	return fresh
}

// sweep forgets the nodes silent for twice the window: see replayGuard.
func (g *replayGuard) sweep(now time.Time) {
	g.swept = now
	for id, w := range g.nodes {
		if now.Sub(w.last) > 2*g.window {
			delete(g.nodes, id)
		}
	}
}

// tracked returns how many nodes the guard remembers.
func (g *replayGuard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.nodes)
}

// accept records seq and reports whether it was new. Sequence numbers start
// at 1, so the zero value accepts any first one.
func (w *seqWindow) accept(seq uint64) bool {
	switch {
	case seq == 0:
		return false
	case seq > w.high:
		if seq-w.high >= replayBits {
			clear(w.seen[:])
		} else if seq-w.high > 1 {
			w.clear(w.high+1, seq-1)
		}
		w.high = seq
	case w.high-seq >= replayBits:
		return false // too old to tell apart from a replay
	case w.seen[(seq%replayBits)/64]&(1<<(seq%64)) != 0:
		return false
	}
	w.seen[(seq%replayBits)/64] |= 1 << (seq % 64)
	return true
}

// clear forgets the sequence numbers from..to, which fell out of the
// window; to-from < replayBits. A word at a time, because a receiver sees
// only the messages of its own topics: the sequence numbers of a busy node
// arrive with large gaps.
func (w *seqWindow) clear(from, to uint64) {
	for s := from; s <= to; {
		bit := s % 64
		n := min(64-bit, to-s+1)
		mask := ^uint64(0)
		if n < 64 {
			mask = 1<<n - 1
		}
		w.seen[(s%replayBits)/64] &^= mask << bit
		s += n
	}
}
