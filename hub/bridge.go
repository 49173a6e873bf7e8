package hub

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
	wsproto "github.com/wsgate/wsgate/protocol"
)

func init() {
	bridge.Attach = attach
	bridge.Connect = connect
	bridge.SettingsOf = settingsOf
	bridge.Attachments = attachments
	bridge.Emit = emit
}

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
	meta := requestMeta{
		ip: req.ClientIP, userAgent: truncate(req.UserAgent), origin: truncate(req.Origin),
		host: truncate(req.Host), path: truncate(req.Path), requestID: req.RequestID,
	}
	return h.attach(req.Ctx, meta, id, codec, s, nil)
}

// attach starts a bridged connection of id, whose request is described by
// meta; base is the context its handlers derive from.
func (h *Hub) attach(base context.Context, meta requestMeta, id auth.Identity, codec protocol.Codec, s bridge.Sink, resume *bridge.Resume) (bridge.Conn, error) {
	if !h.enterRequest() {
		return nil, ErrShuttingDown
	}
	meta.user, meta.tenant = id.UserID, id.TenantID
	if base == nil {
		base = context.Background()
	}
	release, rej := h.admit(base, id)
	if rej != nil {
		h.exitRequest()
		h.obs.Refused(admitEvent(rej))
		h.log.Warn("connection refused", meta.attrs(slog.String("event", admitEvent(rej)))...)
		return nil, rej
	}
	c := &conn{
		h:       h,
		id:      newID(),
		codec:   codec,
		sink:    s,
		bridged: s,
		started: time.Now(),
		release: release, // no done: only the hub's own writer reports a close frame out
	}
	c.tracker, _ = s.(bridge.Tracker)
	if resume != nil {
		if c.tracker == nil {
			h.exitRequest()
			release()
			return nil, errors.New("hub: a Resume needs a transport that keeps positions (bridge.Tracker)")
		}
		c.prevIDs = resume.PrevIDs
	}
	c.holds.Store(1)
	meta.connID = c.id
	c.meta = meta
	c.ctx, c.cancel = context.WithCancel(base)
	h.register(c)
	c.lastRead.Store(time.Now().UnixNano())
	if !c.establishResumed(id, resume) {
		c.Closed("establish_failed")
		return nil, ErrUnknownConnection
	}
	if h.closing.Load() {
		// Shutdown began while this connection was admitted: it took its
		// snapshot without it, so the connection is told to go here.
		c.setReason("shutdown")
		c.closeWith(CloseServiceRestart, "shutdown", "shutdown")
	}
	return c, nil
}

// connect implements bridge.Connect: the transport's session request
// stands for the upgrade request of the hub's own handshake — the
// credential (the in-band token first, else the hub's Tokens extractor on
// the request), the client's address and the other logged attributes, the
// tracer's handshake, ConnContext — and the connection starts as attach's
// do.
func connect(hv any, cred bridge.Credential, codec protocol.Codec, s bridge.Sink) (_ bridge.Conn, err error) {
	h, ok := hv.(*Hub)
	if !ok {
		return nil, bridge.ErrNotAHub
	}
	r := cred.Request
	if r == nil {
		return nil, errors.New("hub: bridge.Connect needs the request of the transport's session")
	}
	if h.closing.Load() {
		return nil, ErrShuttingDown
	}
	ctx, end := h.opts.Tracer.Handshake(r)
	defer func() { end(err) }()
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	meta := requestMeta{
		ip: h.opts.ClientIP(r), userAgent: truncate(r.UserAgent()), requestID: requestID(r),
		origin: truncate(r.Header.Get("Origin")), host: truncate(r.Host), path: truncate(r.URL.Path),
	}
	id, rej := h.authenticateBridged(r, cred.Token, meta)
	if rej != nil {
		return nil, rej
	}
	return h.attach(h.opts.ConnContext(context.WithoutCancel(r.Context()), r), meta, id, codec, s, cred.Resume)
}

// authenticateBridged verifies the in-band token, or the request's
// credential without one. A refusal is counted and logged in the schema
// of the handshake's refusals.
func (h *Hub) authenticateBridged(r *http.Request, token string, meta requestMeta) (auth.Identity, *wsproto.Refusal) {
	if token == "" {
		t, _, err := h.opts.Tokens.Extract(r)
		if err != nil {
			reason := auth.Reason(err)
			h.obs.AuthFailed(reason)
			return auth.Identity{}, h.refuseBridged(r, meta, "unauthorized", &wsproto.Refusal{Status: http.StatusUnauthorized,
				Code: wsproto.CodeUnauthorized, Message: "credentials required"}, slog.String("reason", reason))
		}
		token = t
	}
	id, err := h.opts.Authenticator.Authenticate(r.Context(), token)
	if err == nil {
		return id, nil
	}
	reason := auth.Reason(err)
	h.obs.AuthFailed(reason)
	switch {
	case errors.Is(err, auth.ErrKeyLookup):
		// The credential may be good: the client keeps it and comes back.
		return id, h.refuseBridged(r, meta, "key_lookup", &wsproto.Refusal{Status: http.StatusServiceUnavailable,
			Code: wsproto.CodeUnavailable, Message: "cannot verify credentials now", RetryAfter: 5 * time.Second})
	case errors.Is(err, auth.ErrTokenExpired):
		// A client told so refreshes its token rather than retrying it.
		return id, h.refuseBridged(r, meta, "unauthorized", &wsproto.Refusal{Status: http.StatusUnauthorized,
			Code: wsproto.CodeTokenExpired, Message: "token expired"}, slog.String("reason", reason))
	}
	return id, h.refuseBridged(r, meta, "unauthorized", &wsproto.Refusal{Status: http.StatusUnauthorized,
		Code: wsproto.CodeUnauthorized, Message: "invalid credentials"}, slog.String("reason", reason))
}

// refuseBridged counts and logs a refusal as refuse does, without an HTTP
// answer: the transport tells the client in its own way.
func (h *Hub) refuseBridged(r *http.Request, meta requestMeta, event string, rej *wsproto.Refusal, extra ...slog.Attr) *wsproto.Refusal {
	_ = h.refuse(discardResponse{}, r, meta, event, rej, extra...)
	return rej
}

// discardResponse is an http.ResponseWriter that writes nowhere.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (discardResponse) WriteHeader(int)             {}

// settingsOf implements bridge.SettingsOf.
func settingsOf(hv any) (bridge.Settings, error) {
	h, ok := hv.(*Hub)
	if !ok {
		return bridge.Settings{}, bridge.ErrNotAHub
	}
	return bridge.Settings{MaxMessageBytes: h.opts.MaxMessageBytes}, nil
}

// attachments implements bridge.Attachments.
func attachments(ctx context.Context) [][]byte {
	if x, ok := FromContext(ctx); ok {
		return x.call.binary
	}
	return nil
}

// emit implements bridge.Emit: Context.Emit, with the attachments of an
// Attached value.
func emit(ctx context.Context, event string, data any) error {
	x, ok := FromContext(ctx)
	if !ok {
		return errors.New("hub: Emit needs a handler's context")
	}
	m, err := eventMessage(event, "", data)
	if err != nil {
		return err
	}
	if a, ok := data.(bridge.Attached); ok {
		m.Binary = a.BinaryAttachments()
	}
	x.call.c.send(&m)
	return nil
}

// encodeResult encodes a handler's result as encodeData does, with its
// attachments when it carries some.
func encodeResult(out any) ([]byte, [][]byte, error) {
	data, err := encodeData(out)
	if err != nil {
		return nil, nil, err
	}
	if a, ok := out.(bridge.Attached); ok {
		return data, a.BinaryAttachments(), nil
	}
	return data, nil, nil
}

// ID implements bridge.Conn.
func (c *conn) ID() string { return c.id }

// Handle implements bridge.Conn: one message, through the same rate limits
// and dispatch as a WebSocket's.
func (c *conn) Handle(in protocol.Inbound) { c.handleBridged(in, nil) }

// HandleInvalid implements bridge.Conn: a message the transport could not
// map, answered as a frame the hub could not decode.
func (c *conn) HandleInvalid(in protocol.Inbound, reason error) {
	if reason == nil {
		reason = protocol.ErrInvalid
	}
	c.handleBridged(in, reason)
}

func (c *conn) handleBridged(in protocol.Inbound, err error) {
	if c.closing.Load() || c.ctx.Err() != nil {
		return
	}
	c.lastRead.Store(time.Now().UnixNano())
	if !c.allowMessage() {
		c.h.obs.MessageIn(UnknownEvent, "rate_limited")
		c.rateLimited(in, "")
		return
	}
	c.process(in, err)
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
