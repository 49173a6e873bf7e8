package hub

import (
	"time"

	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// The timers of a connection are time.AfterFunc callbacks: an idle
// connection parks no goroutine on any of them, and a server ping does not
// wait for its pong — gotPong clears awaitingPong, and the next tick finds
// it cleared or closes the connection.

// startHeartbeat schedules the first server ping and, if configured, the
// idle check.
func (c *conn) startHeartbeat() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	c.heartbeat = time.AfterFunc(c.h.opts.PingInterval, c.beat)
	if c.h.opts.IdleTimeout > 0 {
		c.idle = time.AfterFunc(c.h.opts.IdleTimeout, c.checkIdle)
	}
}

// beat sends a ping and arms the pong deadline, or, if that deadline
// passed without a pong, ends the connection.
func (c *conn) beat() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	if c.awaitingPong {
		c.setReason("heartbeat_timeout")
		c.abort()
		return
	}
	if !c.ping() {
		return // closing
	}
	c.awaitingPong = true
	c.heartbeat.Reset(c.h.opts.PongTimeout)
}

// ping sends the codec's heartbeat, or a WebSocket ping.
func (c *conn) ping() bool {
	if hb, ok := c.codec.(protocol.Heartbeater); ok {
		return c.ws.out.Send(wire.Reply, hb.Heartbeat()...) == wire.Queued
	}
	return c.ws.out.Ping()
}

// gotPong records the peer's answer; the next ping follows PingInterval
// after it.
func (c *conn) gotPong() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if !c.awaitingPong || c.ctx.Err() != nil {
		return // unsolicited: metered by the reader, otherwise harmless
	}
	c.awaitingPong = false
	c.heartbeat.Reset(c.h.opts.PingInterval)
}

func (c *conn) checkIdle() {
	since := time.Since(time.Unix(0, c.lastRead.Load()))
	if since >= c.h.opts.IdleTimeout {
		c.setReason("idle_timeout")
		c.closeWith(CloseIdle, "idle timeout", "idle")
		return
	}
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.ctx.Err() == nil {
		c.idle.Reset(c.h.opts.IdleTimeout - since)
	}
}

// scheduleExpiry arms (or re-arms after a refresh) the close at token expiry.
func (c *conn) scheduleExpiry(at time.Time) {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	if at.IsZero() || c.ctx.Err() != nil {
		return
	}
	c.expiry = time.AfterFunc(time.Until(at), c.expire)
}

func (c *conn) expire() {
	id := c.ident.Load()
	if id == nil || time.Now().Before(id.ExpiresAt) {
		return // refreshed in the meantime; scheduleExpiry re-armed the timer
	}
	c.setReason("token_expired")
	c.send(&protocol.Message{Kind: protocol.MsgError, Code: CodeTokenExpired, Text: "token expired"})
	c.closeWith(CloseTokenExpired, "token expired", "token_expired")
}

func (c *conn) stopTimers() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	for _, t := range []*time.Timer{c.heartbeat, c.expiry, c.idle} {
		if t != nil {
			t.Stop()
		}
	}
}
