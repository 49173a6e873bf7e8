package wire

import (
	"sync"
	"time"
)

// WriterConfig is shared by the writers of one server.
type WriterConfig struct {
	// MaxQueued and MaxQueuedBytes bound a writer's queue of data frames.
	// A unit that would exceed either is refused with Full. While a batch is
	// being written the queue fills again, so a writer holds at most twice
	// these.
	MaxQueued      int
	MaxQueuedBytes int
	// WriteTimeout bounds each blocking write to a socket whose buffer is
	// full, so a peer must read at least a chunk (16 KiB) per WriteTimeout.
	WriteTimeout time.Duration
	// Pool writes for writers whose transport can try; nil: every busy
	// writer writes from a goroutine of its own.
	Pool *Pool
}

// Events is told what happens on a writer's socket. Its methods run on the
// goroutine that wrote, outside the writer's lock, once each at most.
type Events interface {
	// CloseSent: the close frame is out; nothing more will be written.
	CloseSent()
	// WriteFailed: the socket failed (or the write deadline passed);
	// nothing more will be written. The caller should close the socket.
	WriteFailed(err error)
}

// Class says how Send treats a unit of frames.
type Class uint8

const (
	// Reply frames are for this connection alone (replies, errors); they are
	// taken from the start.
	Reply Class = iota
	// Broadcast frames are a delivery shared with other connections; they
	// are refused (NotOpen) until an Open unit was queued.
	Broadcast
	// Open is queued like Reply and lets broadcasts in after it, in the same
	// critical section: none can precede it.
	Open
)

// Result is what Send did.
type Result uint8

const (
	// Queued: the unit will be written, unless the connection fails first.
	Queued Result = iota
	// Full: the unit would exceed the queue's bounds; nothing was queued.
	Full
	// NotOpen: a broadcast before the Open unit; nothing was queued.
	NotOpen
	// Closed: the writer is closing, closed or failed; nothing was queued.
	Closed
)

// Writer flags, guarded by Writer.mu.
const (
	fOwned    = 1 << iota // a turn (pool worker or goroutine) holds the socket
	fOpen                 // broadcasts are taken
	fClosing              // a close was asked for: no more data is taken
	fCloseNow             // ... and it goes before the queued data
	fDone                 // the close frame is out or a write failed
	fPing                 // a ping waits in the control lane
	fPong                 // a pong waits in the control lane
)

// Writer owns every write to one connection's socket. Frames are queued by
// any goroutine (Send, Control, Close never block) and written by the one
// turn that holds the socket at a time.
//
// What makes it correct, in one place:
//
//  1. One owner. A turn is started by whoever finds fOwned clear and sets it
//     under mu; only that turn writes to the transport, until it clears
//     fOwned under mu after finding nothing left to write. A pool worker
//     whose socket is full hands the turn to a goroutine it starts, which
//     inherits the ownership: no lock is ever held across a write or passed
//     between goroutines.
//  2. Whole frames, in order. Data frames are written in the order they were
//     queued, each exactly once and never split by another frame: the
//     control lane (pong, ping, close) is only looked at between two data
//     frames, and a chunk (one write, at most 16 KiB) ends at a frame
//     boundary, so a control frame waits for at most the chunk being
//     written, or for the rest of one frame larger than a chunk.
//  3. Nothing after the end. After the close frame, or after the first
//     write error (which is sticky), fDone is set and nothing else is
//     written or queued.
//
// The reader of the connection never writes; the peer's pings are answered
// by Control and its close by Close.
type Writer struct {
	t   Transport
	try TryWriter // nil when t only blocks
	cfg *WriterConfig
	ev  Events

	mu    sync.Mutex // guards the fields down to the blank line
	flags uint8
	queue []Frame
	bytes int    // payload bytes in queue
	pong  []byte // the latest ping's payload, echoed by the pong
	close []byte // the close frame's payload, once a close was asked for

	// Owned by the turn holding the socket.
	batch   []Frame // taken from queue, written from batch[bi:]
	bi      int
	off     int    // payload bytes of batch[bi] already in chunks
	started bool   // batch[bi]'s header is in a chunk
	rest    []byte // the unwritten end of a chunk a pool worker began
	restEnd bool   // rest ends with the close frame
}

// Init prepares a Writer, possibly embedded in a larger value, to write to
// t. ev is told when the close frame is out or a write fails.
func (w *Writer) Init(t Transport, cfg *WriterConfig, ev Events) {
	*w = Writer{t: t, cfg: cfg, ev: ev}
	if tw, ok := t.(TryWriter); ok && cfg.Pool != nil {
		w.try = tw
	}
}

// Send queues frames as one unit, all or none, and makes sure a turn will
// write them. It never blocks.
func (w *Writer) Send(class Class, frames ...Frame) Result { return w.send(class, frames, nil) }

// SendBatch is Send for a fan-out: a writer the pool must start is added to
// b instead of being handed to the pool on its own.
func (w *Writer) SendBatch(b *Batch, class Class, frames ...Frame) Result {
	return w.send(class, frames, b)
}

func (w *Writer) send(class Class, frames []Frame, b *Batch) Result {
	n := 0
	for i := range frames {
		n += len(frames[i].Payload)
	}
	w.mu.Lock()
	switch {
	case w.flags&(fClosing|fDone) != 0:
		w.mu.Unlock()
		return Closed
	case class == Broadcast && w.flags&fOpen == 0:
		w.mu.Unlock()
		return NotOpen
	case len(w.queue)+len(frames) > w.cfg.MaxQueued || w.bytes+n > w.cfg.MaxQueuedBytes:
		w.mu.Unlock()
		return Full
	}
	w.queue = append(w.queue, frames...)
	w.bytes += n
	if class == Open {
		w.flags |= fOpen
	}
	start := w.own()
	w.mu.Unlock()
	if start {
		w.start(b)
	}
	return Queued
}

// own takes the turn if nobody holds it; the caller holds mu.
func (w *Writer) own() bool {
	if w.flags&fOwned != 0 {
		return false
	}
	w.flags |= fOwned
	return true
}

// Ping queues a ping in the control lane; a ping already waiting is not
// doubled. It returns false once the writer is done.
func (w *Writer) Ping() bool { return w.control(fPing, nil) }

// Pong queues the answer to a ping carrying payload. Only the latest
// unanswered ping is answered, as RFC 6455 section 5.5.3 allows.
func (w *Writer) Pong(payload []byte) bool { return w.control(fPong, payload) }

func (w *Writer) control(flag uint8, payload []byte) bool {
	if len(payload) > MaxControlPayload {
		payload = payload[:MaxControlPayload]
	}
	w.mu.Lock()
	if w.flags&fDone != 0 || w.close != nil {
		w.mu.Unlock()
		return false
	}
	w.flags |= flag
	if flag == fPong {
		w.pong = append(w.pong[:0], payload...)
	}
	start := w.own()
	w.mu.Unlock()
	if start {
		w.start(nil)
	}
	return true
}

// Close asks for the close frame with code and reason: after the data
// frames already queued, then final (a goodbye message, say), or, when now
// is set, before them (they are dropped; a frame being written is
// finished first). No data is taken afterwards. Only the first call counts;
// it reports whether it was the first.
func (w *Writer) Close(code StatusCode, reason string, now bool, final ...Frame) bool {
	payload := AppendClosePayload(make([]byte, 0, 2+len(reason)), code, reason)
	w.mu.Lock()
	if w.close != nil || w.flags&fDone != 0 {
		w.mu.Unlock()
		return false
	}
	w.close = payload
	w.flags |= fClosing
	if now {
		w.flags |= fCloseNow
		clear(w.queue)
		w.queue, w.bytes = w.queue[:0], 0
	}
	for _, f := range final {
		w.queue = append(w.queue, f)
		w.bytes += len(f.Payload)
	}
	start := w.own()
	w.mu.Unlock()
	if start {
		w.start(nil)
	}
	return true
}

// Done reports whether the close frame is out or a write failed.
func (w *Writer) Done() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flags&fDone != 0
}

// start runs a turn: in the pool when the socket can be tried, otherwise on
// a goroutine of its own. The caller owns the turn.
func (w *Writer) start(b *Batch) {
	switch {
	case w.try == nil:
		go w.blockingTurn()
	case b != nil:
		b.add(w)
	default:
		w.cfg.Pool.push(w)
	}
}

// chunkSize is the most one write carries. A turn's buffer holds one chunk,
// so this also bounds what a blocked writer pins beyond its queue.
const chunkSize = 16 << 10

// keptQueueCap is the largest queue array a writer keeps between turns: it
// saves an allocation per delivery under steady fan-out, at 128 bytes.
const keptQueueCap = 4

// fill encodes the next chunk into buf: the control lane first when between
// data frames, then data frames, copied in as far as buf has room. last
// says the chunk ends with the close frame. An empty chunk means there was
// nothing to write.
func (w *Writer) fill(buf []byte) (chunk []byte, last bool) {
	w.mu.Lock()
	if !w.started {
		buf, last = w.fillControl(buf)
		if last {
			w.mu.Unlock()
			return buf, true
		}
	}
	if w.bi == len(w.batch) && len(w.queue) > 0 {
		clear(w.batch)
		w.batch, w.queue = w.queue, w.batch[:0]
		w.bi, w.bytes = 0, 0
	}
	w.mu.Unlock()
	// A chunk ends at a frame boundary, so that the control lane is looked
	// at again after at most one chunk: a frame starts in a chunk only if it
	// fits whole, or if it is larger than a chunk and the chunk is empty;
	// and the chunk that finishes such a frame ends with it.
	continued := w.started
	for w.bi < len(w.batch) && len(buf) < cap(buf) {
		f := &w.batch[w.bi]
		if !w.started {
			if len(buf) > 0 && cap(buf)-len(buf) < maxHeader+len(f.Payload) {
				break
			}
			buf = appendHeader(buf, f.Op, f.Deflated, len(f.Payload))
			w.started, w.off = true, 0
		}
		n := copy(buf[len(buf):cap(buf)], f.Payload[w.off:])
		buf, w.off = buf[:len(buf)+n], w.off+n
		if w.off < len(f.Payload) {
			break
		}
		*f = Frame{}
		w.bi++
		w.started = false
		if continued {
			break
		}
	}
	return buf, false
}

// fillControl appends the control lane; the caller holds mu. The close
// frame goes last, once no data is left to go before it.
func (w *Writer) fillControl(buf []byte) ([]byte, bool) {
	if w.flags&fPong != 0 {
		buf = appendHeader(buf, OpPong, false, len(w.pong))
		buf = append(buf, w.pong...)
		w.flags &^= fPong
	}
	if w.flags&fPing != 0 {
		buf = appendHeader(buf, OpPing, false, 0)
		w.flags &^= fPing
	}
	if w.close == nil || w.flags&fCloseNow == 0 && (w.bi < len(w.batch) || len(w.queue) > 0) {
		return buf, false
	}
	buf = appendHeader(buf, OpClose, false, len(w.close))
	return append(buf, w.close...), true
}

// release gives the turn up if nothing is left to write; otherwise the
// caller keeps it.
func (w *Writer) release() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bi < len(w.batch) || len(w.queue) > 0 || w.flags&(fPing|fPong) != 0 ||
		w.close != nil && w.flags&fDone == 0 {
		return false
	}
	w.flags &^= fOwned
	w.batch, w.bi = w.batch[:0], 0
	if cap(w.batch) > keptQueueCap {
		w.batch = nil
	}
	if len(w.queue) == 0 && cap(w.queue) > keptQueueCap {
		w.queue = nil
	}
	return true
}

// finish ends the writer after the close frame (err nil) or a failure.
func (w *Writer) finish(err error) {
	w.mu.Lock()
	w.flags = w.flags&^(fOwned|fPing|fPong) | fDone
	clear(w.queue)
	clear(w.batch)
	w.queue, w.batch, w.bi, w.bytes, w.rest = nil, nil, 0, 0, nil
	w.mu.Unlock()
	if err != nil {
		w.ev.WriteFailed(err)
		return
	}
	w.ev.CloseSent()
}

// poolTurn writes without blocking until nothing is left, the socket is
// full (the turn moves to a goroutine of its own) or the batch is done
// while others wait (the writer goes to the back of the pool's line).
func (w *Writer) poolTurn(buf []byte) {
	for {
		chunk, last := w.fill(buf[:0])
		if len(chunk) == 0 {
			if w.release() {
				return
			}
			continue
		}
		n, err := w.try.TryWrite(chunk)
		switch {
		case err != nil:
			w.finish(err)
			return
		case n < len(chunk):
			w.rest, w.restEnd = append([]byte(nil), chunk[n:]...), last
			go w.blockingTurn()
			return
		case last:
			w.finish(nil)
			return
		}
		if w.bi == len(w.batch) {
			// The batch is out: give the turn up, or, if more came
			// meanwhile, queue behind the others so every connection gets
			// its turn.
			if !w.release() {
				w.cfg.Pool.push(w)
			}
			return
		}
	}
}

// blockingTurn writes with blocking writes, each bounded by WriteTimeout,
// until nothing is left; it starts with the unwritten rest of a chunk a
// pool worker began.
func (w *Writer) blockingTurn() {
	sc := getScratch()
	defer putScratch(sc)
	for {
		chunk, last := w.rest, w.restEnd
		w.rest, w.restEnd = nil, false
		if chunk == nil {
			chunk, last = w.fill(sc.buf[:0])
		}
		if len(chunk) == 0 {
			// A later try must not meet this turn's deadline.
			_ = w.t.SetWriteDeadline(time.Time{})
			if w.release() {
				return
			}
			continue
		}
		_ = w.t.SetWriteDeadline(time.Now().Add(w.cfg.WriteTimeout))
		if _, err := w.t.Write(chunk); err != nil {
			w.finish(err)
			return
		}
		if last {
			w.finish(nil)
			return
		}
	}
}
