package wire

import (
	"runtime"
	"sync"
)

// Pool writes for writers whose socket takes non-blocking writes. A few
// workers take writers with frames queued, in FIFO order, and write each
// one's queue in as few write(2) calls as it needs. A frame queued while its
// writer waits for its turn joins that turn, so the busier the server, the
// more frames each write carries; and no goroutine is started, nor deadline
// armed, per delivery. A writer whose socket does not take everything at
// once (a slow reader) continues on a goroutine of its own, so a worker
// never waits for a peer.
//
// Workers exist only while there is work: the last one to find nothing
// exits.
type Pool struct {
	mu     sync.Mutex // guards the fields below
	ready  []*Writer  // FIFO: ready[head:] wait for a worker
	head   int
	active int
	max    int
}

// NewPool returns a pool of at most workers workers; 0 means GOMAXPROCS.
func NewPool(workers int) *Pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Pool{max: workers}
}

// push queues writers whose turns their callers own, starting as many
// workers as they need, up to max.
func (p *Pool) push(ws ...*Writer) {
	if len(ws) == 0 {
		return
	}
	p.mu.Lock()
	p.ready = append(p.ready, ws...)
	start := min(p.max-p.active, len(ws))
	p.active += start
	p.mu.Unlock()
	for range start {
		go p.work()
	}
}

// pop returns the next writer, or nil when there is none; the caller holds
// mu.
func (p *Pool) pop() *Writer {
	if p.head == len(p.ready) {
		p.ready, p.head = p.ready[:0], 0
		return nil
	}
	w := p.ready[p.head]
	p.ready[p.head] = nil
	p.head++
	// Under sustained load the line never empties: reclaim the consumed
	// prefix once it is half the slice.
	if p.head >= 1024 && 2*p.head >= len(p.ready) {
		n := copy(p.ready, p.ready[p.head:])
		clear(p.ready[n:])
		p.ready, p.head = p.ready[:n], 0
	}
	return w
}

func (p *Pool) work() {
	sc := getScratch()
	defer putScratch(sc)
	for {
		p.mu.Lock()
		w := p.pop()
		if w == nil {
			p.active--
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		w.poolTurn(sc.buf)
	}
}

// Batch collects the writers a fan-out must start, to hand them to the
// pool in one go: one lock instead of one per recipient.
type Batch struct {
	p  *Pool
	ws []*Writer
}

var batches = sync.Pool{New: func() any { return new(Batch) }}

// NewBatch returns an empty batch for p; Flush hands it back.
func (p *Pool) NewBatch() *Batch {
	b := batches.Get().(*Batch)
	b.p = p
	return b
}

func (b *Batch) add(w *Writer) {
	if b.p == nil {
		w.cfg.Pool.push(w)
		return
	}
	b.ws = append(b.ws, w)
}

// Flush starts the turns collected in b and recycles it. b must not be used
// afterwards. A nil b does nothing.
func (b *Batch) Flush() {
	if b == nil {
		return
	}
	if b.p != nil {
		b.p.push(b.ws...)
	}
	clear(b.ws)
	b.ws, b.p = b.ws[:0], nil
	batches.Put(b)
}

// scratch is a turn's chunk buffer.
type scratch struct{ buf []byte }

var scratches = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, chunkSize)} }}

func getScratch() *scratch  { return scratches.Get().(*scratch) }
func putScratch(s *scratch) { scratches.Put(s) }
