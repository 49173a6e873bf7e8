package main

import (
	"sync/atomic"
	"time"
)

// sink collects what every client reader sees, for the phase in progress.
type sink struct {
	phase  atomic.Pointer[phase]
	closed atomic.Int64 // connections whose reader ended
	stray  atomic.Int64 // broadcasts outside the current phase (late ones)
}

// phase is one measurement: broadcasts with sequence numbers in
// [base, base+len(counts)), each expected to reach `expected` clients.
type phase struct {
	base     int64
	expected int32
	counts   []atomic.Int32
	done     []chan struct{} // done[i] is closed when broadcast base+i reached everyone
	hist     hist
	n        atomic.Int64 // deliveries recorded
	first    atomic.Int64 // unix nanos of the first delivery
	last     atomic.Int64 // unix nanos of the latest delivery
}

func newPhase(base int64, size int, expected int) *phase {
	p := &phase{base: base, expected: int32(expected), counts: make([]atomic.Int32, size), done: make([]chan struct{}, size)}
	for i := range p.done {
		p.done[i] = make(chan struct{})
	}
	return p
}

func (s *sink) delivered(seq, now, bts int64) {
	p := s.phase.Load()
	if p == nil || seq < p.base || seq >= p.base+int64(len(p.counts)) {
		s.stray.Add(1)
		return
	}
	p.hist.Record(time.Duration(now - bts))
	p.n.Add(1)
	p.first.CompareAndSwap(0, now)
	for {
		l := p.last.Load()
		if now <= l || p.last.CompareAndSwap(l, now) {
			break
		}
	}
	if p.counts[seq-p.base].Add(1) == p.expected {
		close(p.done[seq-p.base])
	}
}

// wait blocks until broadcast seq reached every client or d passes; it
// reports whether it was complete.
func (p *phase) wait(seq int64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done[seq-p.base]:
		return true
	case <-t.C:
		return false
	}
}
