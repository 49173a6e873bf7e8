package engine

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// closeTimeout bounds the wait for the client's close frame once ours is
// out.
const closeTimeout = 5 * time.Second

// abuseTimeout bounds how long a socket that broke the framing rules is
// still read (and its input dropped) while its close frame goes out.
const abuseTimeout = time.Second

// wsConn is one WebSocket of a session: its transport, the probe socket
// of an upgrade, or a socket that is only accepted to be closed. Who owns
// what: the read goroutine (serve) owns in and probe; out owns the
// socket's write side (see wire.Writer); the rest is atomic or set before
// serve starts.
type wsConn struct {
	s   *Session
	nc  net.Conn
	out wire.Writer
	in  wire.Reader
	b64 bool // the client asked for binary messages as base64 text

	probe bool // read goroutine: an upgrade not yet completed

	closing      atomic.Bool // a close frame was asked for: inbound data is dropped
	peerClosed   atomic.Bool
	readDeadline atomic.Int64  // unix nanos of the deadline set while closing
	done         chan struct{} // closed once the close frame is out or a write failed
	doneOnce     sync.Once
}

func newWSConn(s *Session, up wire.Upgraded, b64 bool) *wsConn {
	c := &wsConn{s: s, nc: up.Conn, b64: b64, done: make(chan struct{})}
	c.out.Init(wire.NewTransport(up.Conn), &s.srv.wcfg, c)
	c.in.Reset(up.Conn, up.Buffered, wire.ReaderOptions{MaxMessageBytes: int64(s.srv.opts.MaxPayload)})
	return c
}

// openWebSocket completes a WebSocket handshake: the open packet is the
// first frame.
func (s *Session) openWebSocket(w http.ResponseWriter, r *http.Request, q eio.Query) {
	up, err := wire.Accept(w, r, wire.Response{})
	if err != nil {
		s.closeNow(ReasonTransportError, wsEnd{})
		return
	}
	c := newWSConn(s, up, q.Base64)
	open := eio.AppendOpen(make([]byte, 0, 128), s.handshake(eio.WebSocket))
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		_ = up.Conn.Close()
		return
	}
	s.ws = c
	c.out.Send(wire.Open, wire.Frame{Op: wire.OpText, Payload: open})
	s.flushQueueLocked()
	s.startHeartbeatLocked()
	s.mu.Unlock()
	s.srv.conns.Add(1)
	go c.serve()
}

// upgrade serves a WebSocket that carries the sid of a session: the
// probe of an upgrade from polling. A socket that cannot be one (the
// session is not on polling, or already upgrading) is accepted and then
// closed, leaving the session as it is: the official client treats a
// refused handshake as an error of the whole connection.
func (s *Session) upgrade(w http.ResponseWriter, r *http.Request, q eio.Query) {
	if wire.Check(r) != nil {
		eio.WriteError(w, eio.CodeBadRequest)
		return
	}
	up, err := wire.Accept(w, r, wire.Response{})
	if err != nil {
		return
	}
	c := newWSConn(s, up, q.Base64)
	s.mu.Lock()
	ok := s.state == stateOpen && s.transport == eio.Polling
	if ok {
		c.probe = true
		s.state, s.probe = stateUpgrading, c
		s.upgradeTimer = time.AfterFunc(s.srv.opts.UpgradeTimeout, func() { s.probeFailed(c) })
	}
	s.mu.Unlock()
	if !ok {
		c.closeFrame(wire.StatusPolicyViolation, true)
	}
	s.srv.conns.Add(1)
	go c.serve()
}

// probePacket handles a packet on the probe socket of an upgrade.
func (c *wsConn) probePacket(p eio.Packet) {
	s := c.s
	switch {
	case p.Type == eio.Ping && string(p.Data) == "probe":
		if !s.allowControl() {
			return
		}
		c.out.Send(wire.Reply, probeAnswer)
		s.probed(c)
	case p.Type == eio.Upgrade:
		if s.completeUpgrade(c) {
			c.probe = false
			return
		}
		c.closeFrame(wire.StatusNormalClosure, true)
	default:
		s.probeFailed(c)
	}
}

// probed releases a held GET with a noop, so that the client can pause
// polling and finish the upgrade.
func (s *Session) probed(c *wsConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.probe == c && s.get != nil {
		s.get.answer(replyNoop)
	}
}

// completeUpgrade makes c the session's transport. What was queued for
// polling goes to the socket first, in order, in the same critical
// section as the switch: nothing sent meanwhile can overtake it, and
// nothing is left for a GET, which is refused from now on.
func (s *Session) completeUpgrade(c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateUpgrading || s.probe != c {
		return false
	}
	stopTimer(s.upgradeTimer)
	s.state, s.transport, s.ws, s.probe = stateOpen, eio.WebSocket, c, nil
	s.flushQueueLocked()
	if s.get != nil {
		s.get.answer(replyBadRequest)
	}
	return true
}

// flushQueueLocked moves the polling queue to the WebSocket writer, whose
// bounds leave room for it.
func (s *Session) flushQueueLocked() {
	if len(s.queue) == 0 {
		return
	}
	s.ws.send(nil, wire.Reply, s.queue)
	clear(s.queue)
	s.queue, s.queueBytes = nil, 0
}

// probeFailed abandons an upgrade: the probe socket is closed and the
// session stays on polling, where a GET may take what was queued.
func (s *Session) probeFailed(c *wsConn) {
	s.mu.Lock()
	if s.probe == c {
		s.dropProbeLocked()
		if s.get != nil {
			s.get.poke()
		}
	}
	s.mu.Unlock()
	c.closeFrame(wire.StatusNormalClosure, true)
}

// send queues a unit on the socket, turning binary frames into base64
// text frames for a client that asked for them.
func (c *wsConn) send(b *wire.Batch, class wire.Class, frames []wire.Frame) wire.Result {
	if c.b64 {
		frames = base64Frames(frames)
	}
	if b != nil {
		return c.out.SendBatch(b, class, frames...)
	}
	return c.out.Send(class, frames...)
}

func base64Frames(frames []wire.Frame) []wire.Frame {
	out, copied := frames, false
	for i, f := range frames {
		if f.Op != wire.OpBinary {
			continue
		}
		if !copied {
			// The caller's frames may be shared with other sessions.
			out, copied = append([]wire.Frame(nil), frames...), true
		}
		p := base64.StdEncoding.AppendEncode([]byte{'b'}, f.Payload)
		out[i] = wire.Frame{Op: wire.OpText, Payload: p}
	}
	return out
}

// serve reads the socket until it ends. Control frames are answered and
// metered here; data frames are decoded and handed to the session (or to
// the upgrade, on a probe socket).
func (c *wsConn) serve() {
	defer c.s.srv.conns.Add(-1)
	defer func() {
		if p := recover(); p != nil {
			c.s.srv.log.Error("panic", slog.String("session", c.s.id), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			c.s.closeNow(ReasonInternal, wsEnd{})
			c.abort()
		}
	}()
	c.readLoop()
	if c.closing.Load() {
		// Let our close frame go out, bounded by the write timeout.
		t := time.NewTimer(c.s.srv.opts.WriteTimeout)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	c.abort()
	c.s.wsEnded(c)
}

// readLoop reads until the socket is done. It waits for input in a shallow
// call (wire.Reader.Wait) and does the work of a frame in next, neither
// inlined into the other: an idle session's goroutine then waits in small
// frames, and the runtime gives it the smallest stack.
//
//go:noinline
func (c *wsConn) readLoop() {
	for {
		if err := c.in.Wait(); err != nil {
			c.readFailed(err)
			return
		}
		if !c.next() {
			return
		}
	}
}

// next reads and handles one frame; false when the socket is done.
//
//go:noinline
func (c *wsConn) next() bool {
	op, p, err := c.in.Next()
	if err != nil {
		c.readFailed(err)
		return false
	}
	switch {
	case op == wire.OpPing || op == wire.OpPong:
		if !c.closing.Load() && c.s.allowControl() && op == wire.OpPing {
			c.out.Pong(p)
		}
		return true
	case c.closing.Load():
		return true // waiting for the client's close frame
	}
	pkt, err := eio.DecodeFrame(p, op == wire.OpBinary, c.s.srv.limits)
	switch {
	case err != nil && c.probe:
		c.s.probeFailed(c)
	case err != nil:
		c.s.closeNow(ReasonParseError, wsEnd{code: wire.StatusPolicyViolation})
	case c.probe:
		c.probePacket(pkt)
	case c.s.beginDeliver():
		c.s.receive(pkt)
		c.s.endDeliver()
	}
	return true
}

// readFailed answers what needs an answer when reading stops.
func (c *wsConn) readFailed(err error) {
	var ce *wire.CloseError
	switch {
	case errors.As(err, &ce) && ce.Peer:
		c.peerClosed.Store(true)
		code := ce.Code
		if code == wire.StatusNoStatusRcvd {
			code = wire.StatusNormalClosure
		}
		// Echo the code; if our own close is already out, the closing
		// handshake is complete.
		if !c.closeFrame(code, true) && c.out.Done() {
			c.abort()
		}
	case errors.As(err, &ce):
		c.s.srv.log.Info("websocket_violation", slog.String("session", c.s.id), slog.String("reason", ce.Reason))
		// The close frame says why, before anything else ends the socket.
		c.closeFrame(ce.Code, true)
		if c.probe {
			c.s.probeFailed(c)
		} else {
			c.s.closeNow(ReasonParseError, wsEnd{code: ce.Code})
		}
		c.discardInput()
	}
}

// wsEnded tells the session that c's reader is done.
func (s *Session) wsEnded(c *wsConn) {
	s.mu.Lock()
	transport, probe := s.ws == c, s.probe == c
	s.mu.Unlock()
	switch {
	case transport:
		s.closeNow(ReasonTransportClose, wsEnd{})
	case probe:
		s.probeFailed(c)
	}
}

// closeFrame asks for the close frame with code: now, before what is
// queued, or after it. It reports whether this was the first close asked
// for. From here on inbound data is read but not acted on.
func (c *wsConn) closeFrame(code wire.StatusCode, now bool) bool {
	c.closing.Store(true)
	return c.out.Close(code, "", now)
}

// end closes c as a session's closeNow asked.
func (c *wsConn) end(e wsEnd) {
	if e.code == 0 {
		c.closing.Store(true)
		c.abort()
		return
	}
	c.closeFrame(e.code, !e.graceful)
}

// CloseSent implements wire.Events: our close frame is out. If the
// client's came first, the handshake is over; otherwise the reader waits a
// little for it.
func (c *wsConn) CloseSent() {
	c.markDone()
	if c.peerClosed.Load() {
		c.abort()
		return
	}
	c.readBy(time.Now().Add(closeTimeout))
}

// WriteFailed implements wire.Events: nothing more can be written.
func (c *wsConn) WriteFailed(error) {
	c.markDone()
	c.abort()
}

func (c *wsConn) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

// abort closes the socket, which ends the reader and any write.
func (c *wsConn) abort() { _ = c.nc.Close() }

// readBy sets the read deadline to t, unless an earlier one was set.
func (c *wsConn) readBy(t time.Time) {
	for {
		cur := c.readDeadline.Load()
		if cur != 0 && cur <= t.UnixNano() {
			return
		}
		if c.readDeadline.CompareAndSwap(cur, t.UnixNano()) {
			_ = c.nc.SetReadDeadline(t)
			return
		}
	}
}

// discardInput drops what the client still sends, for at most
// abuseTimeout, after a frame the reader could not parse past: closing a
// socket with unread input resets it, and the client could lose the close
// frame that says why.
func (c *wsConn) discardInput() {
	c.readBy(time.Now().Add(abuseTimeout))
	var buf [512]byte
	for {
		if _, err := c.nc.Read(buf[:]); err != nil {
			return
		}
	}
}
