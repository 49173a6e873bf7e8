package hub

import (
	"runtime"
	"sync"
)

// writerPool runs the send side of connections whose socket takes
// non-blocking writes (poolWriter.tryWrite). A few workers take connections
// with frames queued, in FIFO order, and write each one's whole queue in as
// few write(2) calls as it needs. A frame queued while its connection waits
// for its turn joins that connection's batch, so the busier the hub, the more
// frames each write carries; and no goroutine is started, nor deadline armed,
// per delivery. A connection whose socket does not take everything at once
// (a slow reader) is handed to a goroutine of its own, which blocks with the
// write deadline as before, so a worker never waits for a peer.
//
// Workers exist only while there is work: the last one to find the queue
// empty exits.
type writerPool struct {
	mu     sync.Mutex
	ready  []*conn // FIFO: ready[head:] wait for a worker
	head   int
	active int
	max    int
}

func (p *writerPool) init() { p.max = max(runtime.GOMAXPROCS(0), 1) }

// push queues conns for the workers, starting as many as they need, up to
// max. The caller owns their send sides (c.writing is set) and hands them
// over.
func (p *writerPool) push(conns ...*conn) {
	if len(conns) == 0 {
		return
	}
	p.mu.Lock()
	p.ready = append(p.ready, conns...)
	start := min(p.max-p.active, len(conns))
	p.active += start
	p.mu.Unlock()
	for range start {
		go p.work()
	}
}

// pop returns the next connection, or nil when there is none; the caller
// holds mu.
func (p *writerPool) pop() *conn {
	if p.head == len(p.ready) {
		p.ready, p.head = p.ready[:0], 0
		return nil
	}
	c := p.ready[p.head]
	p.ready[p.head] = nil
	p.head++
	// Under sustained load the queue never empties: reclaim the consumed
	// prefix once it is half the slice.
	if p.head >= 1024 && 2*p.head >= len(p.ready) {
		n := copy(p.ready, p.ready[p.head:])
		clear(p.ready[n:])
		p.ready, p.head = p.ready[:n], 0
	}
	return c
}

// getBatch returns an empty slice for enqueueTo to collect connections in;
// pushBatch queues them all and gives the slice back.
func (p *writerPool) getBatch() *[]*conn { return startBatches.Get().(*[]*conn) }

func (p *writerPool) pushBatch(b *[]*conn) {
	p.push(*b...)
	clear(*b)
	*b = (*b)[:0]
	startBatches.Put(b)
}

var startBatches = sync.Pool{New: func() any { return new([]*conn) }}

// poolWriter is a writer's scratch: its batch buffer and, for pool workers,
// the state of a non-blocking write, whose callback is bound once so that a
// write allocates nothing.
type poolWriter struct {
	buf []byte
	p   []byte // being written
	n   int
	err error
	fn  func(fd uintptr) bool
}

var poolWriters = sync.Pool{New: func() any {
	w := &poolWriter{buf: make([]byte, 0, batchBuffer)}
	w.fn = w.writeFD
	return w
}}

func (p *writerPool) work() {
	w := poolWriters.Get().(*poolWriter)
	defer poolWriters.Put(w)
	for {
		p.mu.Lock()
		c := p.pop()
		if c == nil {
			p.active--
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		c.writeTurn(w)
	}
}
