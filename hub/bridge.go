package hub

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
)

func init() { bridge.Attach = attach }

// attach implements bridge.Attach: a connection whose transport is not the
// hub's own WebSocket. It gets everything a WebSocket connection gets —
// admission, identity, automatic rooms, the welcome, handlers, limits,
// delivery, token expiry — except the heartbeat and the reading, which are
// the transport's.
func attach(hv any, req bridge.Request, id auth.Identity, codec protocol.Codec, s bridge.Sink) (bridge.Conn, error) {
	h, ok := hv.(*Hub)
	if !ok {
		return nil, bridge.ErrNotAHub
	}
	if !h.enterRequest() {
		return nil, ErrShuttingDown
	}
	meta := requestMeta{
		ip: req.ClientIP, userAgent: truncate(req.UserAgent), origin: truncate(req.Origin),
		host: truncate(req.Host), path: truncate(req.Path), requestID: req.RequestID,
		user: id.UserID, tenant: id.TenantID,
	}
	release, rej := h.admit(req.Ctx, id)
	if rej != nil {
		h.exitRequest()
		h.obs.Refused(admitEvent(rej))
		h.log.Warn("connection refused", meta.attrs(slog.String("event", admitEvent(rej)))...)
		return nil, rej
	}
	base := req.Ctx
	if base == nil {
		base = context.Background()
	}
	c := &conn{
		h:       h,
		id:      newID(),
		codec:   codec,
		sink:    s,
		bridged: s,
		started: time.Now(),
		done:    make(chan struct{}),
		release: release,
	}
	c.holds.Store(1)
	meta.connID = c.id
	c.meta = meta
	c.ctx, c.cancel = context.WithCancel(base)
	h.register(c)
	c.lastRead.Store(time.Now().UnixNano())
	if !c.establish(id) {
		c.Closed("establish_failed")
		return nil, ErrUnknownConnection
	}
	return c, nil
}

// ID implements bridge.Conn.
func (c *conn) ID() string { return c.id }

// Handle implements bridge.Conn: one message, through the same rate limits
// and dispatch as a WebSocket's.
func (c *conn) Handle(in protocol.Inbound) {
	if c.closing.Load() || c.ctx.Err() != nil {
		return
	}
	c.lastRead.Store(time.Now().UnixNano())
	if !c.allowMessage() {
		c.h.obs.MessageIn(UnknownEvent, "rate_limited")
		c.rateLimited(in, "")
		return
	}
	c.process(in, nil)
}

// Closed implements bridge.Conn: the transport is done with the
// connection; the hub releases what it held, once.
func (c *conn) Closed(reason string) {
	c.closedOnce.Do(func() {
		defer c.h.exitRequest()
		defer func() {
			if p := recover(); p != nil {
				c.h.log.Error("panic", c.meta.attrs(slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
			}
		}()
		c.setReason(reason)
		c.closing.Store(true)
		c.cleanup()
	})
}
