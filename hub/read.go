package hub

import (
	"errors"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// closeTimeout bounds the wait for the peer's close frame once ours is out.
const closeTimeout = 5 * time.Second

// A connection closed for abuse, or after a frame that cannot be parsed
// past, is still read for a little while, its input discarded, so that its
// close frame is not lost to a reset (closing a socket with unread input
// resets the connection): at most abuseTimeout, and at most abuseDrain bytes
// beyond the largest message,
// so that a flood that goes on regardless costs a few milliseconds of a core
// after it is detected, not a second.
const (
	abuseTimeout = time.Second
	abuseDrain   = 64 << 10
)

// drainLimit is how much more input a connection closed for abuse or a
// violation is read: abuseDrain beyond the largest message, so that the
// rest of a refused oversized message is read too.
func (c *conn) drainLimit() int64 { return c.h.opts.MaxMessageBytes + abuseDrain }

// readLoop reads and handles messages until the connection fails or closes.
//
// Its frames are kept small, and the work per message and per control frame
// is in functions that are not inlined into it: an idle connection's
// goroutine waits at the bottom of this loop, and the smaller the stack it
// needs there, the smaller the stack the runtime gives it.
func (c *conn) readLoop() {
	for {
		op, p, ok := c.next()
		if !ok {
			return
		}
		c.onMessage(op, p)
	}
}

// onMessage handles one data message from the read loop.
//
//go:noinline
func (c *conn) onMessage(op wire.Opcode, p []byte) {
	if c.closing.Load() {
		return // closing: what the peer still sends is not acted on
	}
	if !c.allowMessage() {
		c.h.obs.MessageIn(UnknownEvent, "rate_limited")
		in, _ := c.codec.Decode(op, p) // for the id only: the answer carries it
		c.rateLimited(in, "")
		return
	}
	c.handle(op, p)
}

// next returns the next data message. Control frames are handled here, on
// the read goroutine, and every one of them is metered: pings are answered
// through the writer's control lane, pongs feed the heartbeat, and the
// peer's close frame is echoed. ok is false when the connection is over.
func (c *conn) next() (wire.Opcode, []byte, bool) {
	for {
		if err := c.ws.in.Wait(); err != nil {
			c.readFailed(err)
			return 0, nil, false
		}
		op, p, err := c.ws.in.Next()
		if err != nil {
			c.readFailed(err)
			return 0, nil, false
		}
		if c.ws.drainTo != 0 && c.ws.in.Total() > c.ws.drainTo {
			return 0, nil, false // closed for abuse, and still flooding
		}
		if !c.onFrame(op, p) {
			return op, p, true
		}
	}
}

// onFrame notes the arrival of a frame and handles it if it is a control
// frame, reporting whether it was one.
//
//go:noinline
func (c *conn) onFrame(op wire.Opcode, p []byte) (control bool) {
	c.lastRead.Store(time.Now().UnixNano())
	if op != wire.OpPing && op != wire.OpPong {
		return false
	}
	switch {
	case c.closing.Load():
		// Waiting for the peer's close frame.
	case !c.allowControl():
		// Over the rate: not answered, not counted as a heartbeat (and,
		// past the abuse limit, closing).
	case op == wire.OpPing:
		c.ws.out.Pong(p)
	default:
		c.gotPong()
	}
	return true
}

// readFailed records why reading stopped and answers what needs an answer.
//
//go:noinline
func (c *conn) readFailed(err error) {
	var ce *wire.CloseError
	switch {
	case errors.As(err, &ce) && ce.Peer:
		c.peerClosed.Store(true)
		c.setReason("client_closed")
		code := ce.Code
		if code == wire.StatusNoStatusRcvd {
			code = wire.StatusNormalClosure
		}
		// Echo the code, never the peer's reason; if our own close is
		// already out, the handshake is complete.
		if !c.startClose(code, "", nil, true) && c.ws.out.Done() {
			c.abort()
		}
	case errors.As(err, &ce):
		c.setReason(violationReason(ce.Code))
		c.startClose(ce.Code, ce.Reason, nil, true)
		c.discardInput()
	case c.closing.Load():
		// The read deadline after our close frame, or the socket closed
		// by abort: the reason was recorded when the close began.
	default:
		c.setReason("connection_lost")
	}
}

func violationReason(code wire.StatusCode) string {
	switch code {
	case wire.StatusMessageTooBig:
		return "message_too_large"
	case wire.StatusInvalidPayload:
		return "invalid_utf8"
	case wire.StatusPolicyViolation:
		return "frame_abuse"
	}
	return "protocol_error"
}

// discardInput reads and drops what the peer still sends, for at most
// abuseTimeout, after a frame that cannot be parsed past: closing the
// socket with unread input would reset the connection, and the peer could
// lose the close frame that says why.
func (c *conn) discardInput() {
	c.readBy(time.Now().Add(abuseTimeout))
	var buf [512]byte
	for left := c.drainLimit(); left > 0; {
		n, err := c.ws.nc.Read(buf[:])
		if err != nil {
			return
		}
		left -= int64(n)
	}
}

// drain reads until the peer answers the close the server started (or the
// close timeout passes), so that the close frame is not lost to a reset.
func (c *conn) drain() {
	for {
		if _, _, ok := c.next(); !ok {
			return
		}
	}
}

// allowMessage applies the connection-wide message rate.
func (c *conn) allowMessage() bool {
	if c.msgLimit == nil {
		c.msgLimit = rate.NewLimiter(rate.Limit(c.h.opts.MessageRate.Rate), c.h.opts.MessageRate.Burst)
	}
	return c.msgLimit.Allow()
}

// allowControl meters pings and pongs alike: over ClientPingRate they are
// ignored, and AbuseLimit of them within AbuseWindow close the connection
// with 1008 (the close starts once, and the peer has abuseTimeout to
// answer it).
func (c *conn) allowControl() bool {
	if c.ctlLimit == nil {
		r := c.h.opts.ClientPingRate
		c.ctlLimit = rate.NewLimiter(rate.Limit(r.Rate), r.Burst)
	}
	if c.ctlLimit.Allow() {
		return true
	}
	if c.ctlAbuse.hit(c.h.opts.AbuseWindow) > c.h.opts.AbuseLimit {
		c.setReason("ping_flood")
		c.h.log.Warn("control_flood", c.meta.attrs()...)
		c.closeAbuse("control frame flood")
	}
	return false
}

// closeAbuse closes the connection with 1008 at once; the reader gives up
// on the peer after abuseTimeout.
func (c *conn) closeAbuse(reason string) {
	c.readBy(time.Now().Add(abuseTimeout))
	if c.ws != nil {
		c.ws.drainTo = c.ws.in.Total() + c.drainLimit()
	}
	c.startClose(wire.StatusPolicyViolation, reason, nil, true)
}

// readBy sets the read deadline to t, unless an earlier one was set: the
// closing connection is read no longer than the first bound said.
func (c *conn) readBy(t time.Time) {
	if c.ws == nil {
		return // bridged: its transport does the reading
	}
	for {
		cur := c.ws.readDeadline.Load()
		if cur != 0 && cur <= t.UnixNano() {
			return
		}
		if c.ws.readDeadline.CompareAndSwap(cur, t.UnixNano()) {
			_ = c.ws.nc.SetReadDeadline(t)
			return
		}
	}
}

// abuseWindow counts events within a sliding window.
type abuseWindow struct {
	from time.Time
	n    int
}

// hit counts one event and returns the count in the current window.
func (a *abuseWindow) hit(window time.Duration) int {
	now := time.Now()
	if now.Sub(a.from) > window {
		a.from, a.n = now, 0
	}
	a.n++
	return a.n
}

// firstMessageAuth waits up to AuthTimeout for an auth message. It returns
// the identity and the message, which is acked after the welcome.
func (c *conn) firstMessageAuth() (*auth.Identity, protocol.Inbound, bool) {
	t := time.AfterFunc(c.h.opts.AuthTimeout, func() {
		c.setReason("auth_timeout")
		c.send(&protocol.Message{Kind: protocol.MsgError, Code: CodeUnauthorized, Text: "authentication timeout"})
		c.closeWith(CloseUnauthorized, "authentication timeout", "")
	})
	defer t.Stop()
	op, p, ok := c.next()
	if !ok || c.closing.Load() {
		return nil, protocol.Inbound{}, false
	}
	in, err := c.codec.Decode(op, p)
	if err != nil || in.Kind != protocol.KindAuth {
		c.refuseAuth(in, CodeUnauthorized, "authenticate first", "no_auth_message")
		return nil, in, false
	}
	id, err := c.h.opts.Authenticator.Authenticate(c.ctx, in.Token)
	if err != nil {
		code := CodeUnauthorized
		if errors.Is(err, auth.ErrTokenExpired) {
			code = CodeTokenExpired
		}
		c.refuseAuth(in, code, "invalid credentials", auth.Reason(err))
		return nil, in, false
	}
	c.meta.user, c.meta.tenant = id.UserID, id.TenantID
	release, rej := c.h.admit(c.ctx, id)
	if rej != nil {
		c.h.obs.Refused(admitEvent(rej))
		c.h.log.Warn("connection refused", c.meta.attrs(slog.String("event", admitEvent(rej)))...)
		c.setReason("connection_limit")
		c.closeWith(CloseConnectionLimit, "too many connections", "")
		return nil, in, false
	}
	c.release = release
	if !t.Stop() || c.closing.Load() {
		return nil, in, false // the timeout won the race
	}
	return &id, in, true
}

func (c *conn) refuseAuth(in protocol.Inbound, code, msg, reason string) {
	c.h.obs.AuthFailed(reason)
	c.h.log.Warn("auth_failed", c.meta.attrs(slog.String("source", auth.SourceMessage.String()), slog.String("reason", reason))...)
	c.setReason("unauthorized")
	c.replyError(in, code, msg)
	c.closeWith(CloseUnauthorized, "unauthorized", "")
}
