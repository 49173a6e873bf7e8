package hub

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// send queues a frame produced for this connection alone (replies, welcome,
// errors). Frames are immutable once queued: broadcasts share one slice
// among all recipients.
func (c *conn) send(frame []byte) bool { return c.enqueue(frame, frameReply) }

// What enqueue is given.
const (
	frameReply     = iota // for this connection alone: replies, errors
	frameBroadcast        // a delivery: refused until the welcome is queued
	frameWelcome          // opens the connection to broadcasts
)

// enqueue appends frame to the bounded send queue and makes sure a writer
// runs. It never blocks, so broker delivery and broadcasts can call it while
// holding the room index's read lock.
func (c *conn) enqueue(frame []byte, kind int) bool { return c.enqueueTo(frame, kind, nil) }

// enqueueTo is enqueue for a fan-out: a connection whose writer must start
// and that the writer pool serves is appended to start, for the caller to
// push with the others, instead of being pushed on its own.
func (c *conn) enqueueTo(frame []byte, kind int, start *[]*conn) bool {
	c.mu.Lock()
	if c.closing || kind == frameBroadcast && !c.ready {
		c.mu.Unlock()
		return false
	}
	o := &c.h.opts
	if len(c.queue) >= o.SendQueueMessages || c.queued+len(frame) > o.SendQueueBytes {
		// Only broadcasts are dropped: a reply that does not fit closes the
		// connection, so a message with an id is never left unanswered
		// while the connection lives (R3).
		if o.SlowConsumer == Drop && kind == frameBroadcast {
			c.dropped++
			c.mu.Unlock()
			c.h.obs.Dropped() // user code: never under c.mu
			return false
		}
		c.closing = true
		c.closeCode, c.closeReason = CloseSlowConsumer, "slow consumer"
		c.mu.Unlock()
		c.setReason("slow_consumer")
		c.h.obs.SlowConsumer()
		// The writer may be stuck on this very peer: close from a goroutine
		// of its own so the caller (a broadcast) is never held up.
		go c.closeHandshake(CloseSlowConsumer, "slow consumer")
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	if kind == frameWelcome {
		c.ready = true
	}
	idle := !c.writing
	c.writing = true
	c.mu.Unlock()
	switch {
	case !idle:
	case start != nil && c.pooled():
		*start = append(*start, c)
	default:
		c.startWriter()
	}
	return true
}

// pooled reports whether the writer pool serves c (see startWriter).
func (c *conn) pooled() bool { return c.shared != nil && c.shared.raw != nil }

// startWriter hands the send side, owned by the caller (c.writing was set),
// to the hub's writer pool or, where non-blocking writes are not possible
// (compression, TLS, other platforms), to a goroutine of its own. Either
// exists only while there is something to send, so an idle connection costs
// no goroutine stack beyond its reader.
func (c *conn) startWriter() {
	if c.pooled() {
		c.h.writers.push(c)
		return
	}
	go c.writeLoop()
}

// writeTurn is a pool worker's turn on c: it writes the whole queue without
// blocking, then queues c again if more frames arrived meanwhile.
func (c *conn) writeTurn(w *poolWriter) {
	c.mu.Lock()
	batch := c.queue
	c.queue, c.queued = nil, 0
	c.mu.Unlock()
	if len(batch) > 0 && !c.tryWriteBatch(batch, w) {
		return // failed, or handed to a goroutine of its own
	}
	c.mu.Lock()
	if c.queue == nil && cap(batch) <= keptQueueCap && !c.closing {
		c.queue = batch[:0] // tryWriteBatch cleared it
	}
	if len(c.queue) > 0 {
		c.mu.Unlock()
		c.h.writers.push(c) // behind the others: every connection gets its turn
		return
	}
	c.writing = false
	closing, code, reason := c.closing, c.closeCode, c.closeReason
	c.mu.Unlock()
	if closing && code != 0 {
		go c.closeHandshake(code, reason) // it waits for the peer's close frame
	}
}

// keptQueueCap is the largest queue backing array a connection keeps between
// batches: reusing it saves an allocation per delivery under steady fan-out,
// at 64 bytes at most per connection.
const keptQueueCap = 8

// tryWriteBatch encodes batch into w's buffer and writes it without blocking. It
// returns false when it did not finish: the write failed (the connection is
// aborted), or the socket or the control-frame lock was busy, and a goroutine
// of its own (blockedWriter) now owns the send side and writes the rest.
func (c *conn) tryWriteBatch(batch [][]byte, w *poolWriter) bool {
	s := c.shared
	if !s.mu.TryLock() {
		// coder/websocket is writing a control frame, possibly blocked on a
		// full socket.
		go c.blockedWriter(nil, batch)
		return false
	}
	if s.closeSent {
		s.mu.Unlock()
		c.writeFailed()
		return false
	}
	for i := 0; i < len(batch); {
		b, j := appendFrames(w.buf[:0], batch, i)
		if j == i {
			// A frame larger than the buffer: the blocking writer sends it
			// without copying.
			s.mu.Unlock()
			go c.blockedWriter(nil, batch[i:])
			return false
		}
		n, err := w.tryWrite(s.raw, b)
		if err != nil {
			s.mu.Unlock()
			c.writeFailed()
			return false
		}
		if n < len(b) {
			// Part of a frame may be out: s.mu stays locked until the rest
			// is, or a pong could land inside it.
			go c.blockedWriter(append([]byte(nil), b[n:]...), batch[j:])
			return false
		}
		i = j
	}
	s.mu.Unlock()
	clear(batch)
	return true
}

// blockedWriter finishes what a pool worker could not write at once —
// pending bytes of a frame already begun, then frames — with blocking writes
// bounded by Options.WriteTimeout, then runs writeLoop until the queue is
// empty. The caller holds c.shared.mu if and only if pending is not empty:
// the lock is let go once the begun frame is out.
func (c *conn) blockedWriter(pending []byte, frames [][]byte) {
	s := c.shared
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
	var err error
	if len(pending) > 0 {
		_, err = s.Conn.Write(pending)
		s.mu.Unlock()
	}
	if err == nil {
		err = s.writeText(frames)
	}
	clear(frames)
	if err != nil {
		c.writeFailed()
		return
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	c.writeLoop()
}

// writeFailed ends a connection whose socket write failed.
func (c *conn) writeFailed() {
	c.mu.Lock()
	c.closing, c.writing, c.queue, c.queued = true, false, nil, 0
	c.mu.Unlock()
	c.setReason("write_failed")
	c.abort()
	// No close handshake is possible any more; let cleanup stop waiting
	// for one.
	c.closeMu.Do(func() { close(c.closeOK) })
}

// writeLoop drains the queue with blocking writes, then performs a pending
// close handshake. It runs on a goroutine of its own.
func (c *conn) writeLoop() {
	var batch [][]byte
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			closing, code, reason := c.closing, c.closeCode, c.closeReason
			c.queue = nil
			c.mu.Unlock()
			if closing && code != 0 {
				c.closeHandshake(code, reason)
			}
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.queued = 0
		c.mu.Unlock()
		// One socket deadline bounds the whole batch (Options.WriteTimeout),
		// cleared afterwards so that pings and the close frame are not
		// caught by it later.
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
		err := c.write(batch)
		clear(batch)
		if err != nil {
			c.writeFailed()
			return
		}
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
}

// write sends frames as text messages, several per syscall on a sharedConn.
func (c *conn) write(frames [][]byte) error {
	if c.shared != nil {
		return c.shared.writeText(frames)
	}
	for _, frame := range frames {
		if err := c.ws.Write(context.Background(), websocket.MessageText, frame); err != nil {
			return err
		}
	}
	return nil
}

// closeWith asks for the connection to close with code after the frames
// already queued, preceded by a bye frame when byeReason is set. Later calls
// are ignored. The bye is queued in the same critical section that marks the
// connection closing, so a writer that drains the queue cannot start the
// handshake before the bye is out.
func (c *conn) closeWith(code websocket.StatusCode, reason, byeReason string) {
	var bye []byte
	if byeReason != "" {
		bye = c.h.codec.AppendBye(nil, byeReason)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.closeCode, c.closeReason = code, reason
	if bye != nil {
		c.queue = append(c.queue, bye)
		c.queued += len(bye)
	}
	idle := !c.writing
	if idle && bye != nil {
		c.writing = true
	}
	c.mu.Unlock()
	switch {
	case idle && bye != nil:
		c.startWriter()
	case idle:
		c.closeHandshake(code, reason)
	}
}

// closeHandshake sends the close frame and waits (bounded by
// coder/websocket) for the peer's; the read loop then ends.
func (c *conn) closeHandshake(code websocket.StatusCode, reason string) {
	c.closeMu.Do(func() {
		_ = c.ws.Close(code, reason)
		close(c.closeOK)
	})
}
