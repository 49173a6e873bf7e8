package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/room"
)

// Limiter keys for the protocol verbs; event names cannot contain '$'.
const (
	verbJoin  = "$join"
	verbLeave = "$leave"
	verbAuth  = "$auth"
)

// handle processes one inbound frame on the read goroutine.
func (c *conn) handle(op wire.Opcode, frame []byte) {
	in, err := c.codec.Decode(op, frame)
	if errors.Is(err, protocol.ErrUnsupported) {
		c.h.obs.MessageIn(UnknownEvent, "invalid")
		c.setReason("unsupported_frame")
		c.startClose(wire.StatusUnsupportedData, "text frames only", nil, true)
		return
	}
	c.process(in, err)
}

// process handles one decoded message (or its decoding error), whatever
// transport it came by.
func (c *conn) process(in protocol.Inbound, err error) {
	c.seq++
	// User code runs here too (Authorizer, Authenticator, Presence,
	// Observer, custom UnmarshalJSON): a panic is answered like a handler's.
	defer func() {
		if p := recover(); p != nil {
			c.h.log.Error("handler_panic", c.msgAttrs(
				slog.String("panic", fmt.Sprint(p)),
				slog.String("stack", string(debug.Stack())))...)
			c.h.obs.MessageIn(UnknownEvent, "panic")
			c.replyError(in, CodeInternal, "internal error")
		}
	}()
	if err != nil {
		c.h.obs.MessageIn(UnknownEvent, "invalid")
		c.h.log.Info("message_invalid", c.msgAttrs(slog.String("reason", err.Error()))...)
		c.replyError(in, CodeInvalidMessage, "invalid message")
		return
	}
	switch in.Kind {
	case protocol.KindEvent:
		c.dispatch(in)
	case protocol.KindJoin:
		c.clientJoin(in)
	case protocol.KindLeave:
		c.clientLeave(in)
	case protocol.KindAuth:
		c.refresh(in)
	case protocol.KindPong:
		c.gotPong()
	}
}

// allow applies the per-connection token bucket of key.
func (c *conn) allow(key string, l Limit) bool {
	lim := c.limiters[key]
	if lim == nil {
		if c.limiters == nil {
			c.limiters = make(map[string]*rate.Limiter, 4)
		}
		lim = rate.NewLimiter(rate.Limit(l.Rate), l.Burst)
		c.limiters[key] = lim
	}
	return lim.Allow()
}

// rateLimited answers RATE_LIMITED and closes the connection with 1008 once
// the client keeps going past AbuseLimit within AbuseWindow.
func (c *conn) rateLimited(in protocol.Inbound, what string) {
	c.h.log.Warn("rate_limited", c.msgAttrs(slog.String("ws_event", what))...)
	if c.abuse.hit(c.h.opts.AbuseWindow) > c.h.opts.AbuseLimit {
		c.setReason("rate_limit_abuse")
		c.closeAbuse("rate limit exceeded")
		return
	}
	c.replyError(in, CodeRateLimited, "too many messages")
}

func (c *conn) dispatch(in protocol.Inbound) {
	hd := c.h.handler(in.Event)
	if hd == nil {
		c.h.obs.MessageIn(UnknownEvent, "unknown_event")
		c.replyError(in, CodeUnknownEvent, "unknown event")
		return
	}
	if !c.allow(in.Event, hd.limit) {
		c.h.obs.MessageIn(in.Event, "rate_limited")
		c.rateLimited(in, in.Event)
		return
	}
	arg, err := hd.decode(in.Data)
	if err != nil {
		c.h.obs.MessageIn(in.Event, "invalid")
		c.h.log.Info("message_invalid", c.msgAttrs(slog.String("ws_event", in.Event), slog.String("reason", err.Error()))...)
		c.replyError(in, CodeInvalidMessage, err.Error())
		return
	}
	c.run(hd, arg, in)
}

type result struct {
	data   []byte
	binary [][]byte // attachments of the data, for protocols that carry them
	err    error
}

// run calls the handler on its own goroutine so that a deadline can answer
// TIMEOUT while the read loop moves on; a panic is recovered and reported
// as INTERNAL. A handler that outlives its deadline (or its connection)
// keeps the user's admission slot until it returns, and a user with
// maxStuckPerUser such handlers on this node gets no new handler run.
func (c *conn) run(hd *handler, arg any, in protocol.Inbound) {
	user := c.identity().UserID
	if c.h.stuck.over(user) {
		c.h.obs.MessageIn(hd.event, "busy")
		c.replyError(in, CodeTimeout, "server busy")
		return
	}
	// cancel runs when run returns, not when the handler does: a handler
	// that finished must not make its own result race its deadline.
	ctx, cancel := context.WithTimeout(c.ctx, c.h.opts.HandlerTimeout)
	defer cancel()
	cl := &call{c: c, event: hd.event, msgID: in.ID, seq: c.seq, binary: in.Binary}
	tctx, end := c.h.opts.Tracer.Message(ctx, hd.event)
	hctx := Context{Context: context.WithValue(tctx, callKey{}, cl), call: cl}
	fn := c.h.chain(hd.fn)
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		ended := false // end is called once, even if it panics itself
		defer func() {
			if p := recover(); p != nil {
				if !ended {
					ended = true
					end(errPanic)
				}
				c.h.log.Error("handler_panic", c.meta.attrs(
					slog.Uint64("msg_seq", cl.seq), // not c.seq: the read loop may have moved on
					slog.String("ws_event", hd.event),
					slog.String("panic", fmt.Sprint(p)),
					slog.String("stack", string(debug.Stack())))...)
				c.h.obs.MessageIn(hd.event, "panic")
				done <- result{err: errPanic}
			}
		}()
		out, err := fn(hctx, arg)
		var data []byte
		var bin [][]byte
		if err == nil {
			data, bin, err = encodeResult(out)
		}
		ended = true
		end(err)
		c.h.obs.HandlerDone(hd.event, time.Since(start))
		done <- result{data, bin, err}
	}()
	select {
	case res := <-done:
		c.reply(in, hd.event, res)
		return
	case <-ctx.Done():
	}
	// The handler outlives run: it holds the admission slot until it returns.
	c.hold()
	n := c.h.stuck.add(user)
	go func() {
		<-done
		c.h.stuck.remove(user)
		c.letGo()
	}()
	if c.ctx.Err() != nil {
		return
	}
	c.h.obs.MessageIn(hd.event, "timeout")
	c.replyError(in, CodeTimeout, "handler timed out")
	if n > maxStuckPerUser {
		c.setReason("handlers_stuck")
		c.closeWith(CloseTryAgainLater, "server busy", "")
	}
}

// maxStuckPerUser bounds the handlers of one user, on one node, that
// ignored their deadline and still run.
const maxStuckPerUser = 8

// stuckHandlers counts, per user, handlers running past their deadline.
type stuckHandlers struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

func (s *stuckHandlers) add(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = make(map[string]int)
	}
	s.n[user]++
	return s.n[user]
}

func (s *stuckHandlers) remove(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[user]--; s.n[user] <= 0 {
		delete(s.n, user)
	}
}

func (s *stuckHandlers) over(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[user] >= maxStuckPerUser
}

var errPanic = errors.New("handler panicked")

func (c *conn) reply(in protocol.Inbound, event string, res result) {
	switch {
	case res.err == nil:
		c.h.obs.MessageIn(event, "ok")
	case errors.Is(res.err, errPanic):
	default:
		c.h.obs.MessageIn(event, "error")
	}
	if res.err == nil {
		if in.HasID {
			c.send(&protocol.Message{Kind: protocol.MsgAck, ID: in.ID, Data: res.data, Binary: res.binary})
		}
		return
	}
	var he *Error
	if errors.As(res.err, &he) {
		if he.Cause != nil {
			c.h.log.Warn("handler_error", c.msgAttrs(slog.String("ws_event", event), slog.String("code", he.Code), slog.String("error", he.Cause.Error()))...)
		}
		c.replyError(in, he.Code, he.Message)
		return
	}
	if !errors.Is(res.err, errPanic) {
		c.h.log.Error("handler_error", c.msgAttrs(slog.String("ws_event", event), slog.String("error", res.err.Error()))...)
	}
	c.replyError(in, CodeInternal, "internal error")
}

// clientJoin handles a join request: rate limit, room policy, room limit.
func (c *conn) clientJoin(in protocol.Inbound) {
	if !c.allow(verbJoin, c.h.opts.EventRate) {
		c.h.obs.MessageIn(verbJoin, "rate_limited")
		c.rateLimited(in, verbJoin)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.h.opts.HandlerTimeout)
	defer cancel()
	err := c.mayJoin(ctx, in)
	if err == nil {
		if r := c.h.routeOf(in.Room); r.keeps() {
			err = c.joinHistory(ctx, in, r)
			if err == nil {
				c.h.obs.MessageIn(verbJoin, "ok")
				return
			}
		} else {
			err = c.h.join(c, in.Room)
			if err == nil {
				c.joined(in.Room, true)
			}
		}
	}
	c.h.obs.MessageIn(verbJoin, joinOutcome(err))
	switch {
	case err == nil:
		c.ack(in)
	case errors.Is(err, auth.ErrTokenExpired):
		c.h.log.Warn("join_token_expired", c.msgAttrs(slog.String("room", in.Room))...)
		c.replyError(in, CodeTokenExpired, "token expired")
	case errors.Is(err, room.ErrInvalidName):
		c.replyError(in, CodeInvalidMessage, "invalid room name")
	case errors.Is(err, room.ErrRoomLimit):
		c.h.log.Warn("room_limit", c.msgAttrs(slog.String("room", in.Room))...)
		c.replyError(in, CodeRoomLimitExceeded, "too many rooms")
	case errors.Is(err, room.ErrForbidden):
		c.h.log.Warn("join_forbidden", c.msgAttrs(slog.String("room", in.Room))...)
		c.replyError(in, CodeForbidden, "not allowed to join this room")
	default:
		c.h.log.Error("join_failed", c.msgAttrs(slog.String("room", in.Room), slog.String("error", err.Error()))...)
		c.replyError(in, CodeInternal, "internal error")
	}
}

// mayJoin applies the room policy to a join. A join with since (a
// recovery) is checked like a fresh join, with the identity of the current
// token, which must not have expired; the automatic rooms, which the server
// chose for that identity, need no rule.
func (c *conn) mayJoin(ctx context.Context, in protocol.Inbound) error {
	id := c.identity()
	if in.Since != nil {
		if !id.ExpiresAt.IsZero() && !time.Now().Before(id.ExpiresAt) {
			return auth.ErrTokenExpired
		}
		if c.isAuto(in.Room) {
			return nil
		}
	}
	return c.h.opts.Rooms.CanJoin(ctx, id, in.Room)
}

func joinOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, room.ErrInvalidName):
		return "invalid"
	case errors.Is(err, room.ErrRoomLimit), errors.Is(err, room.ErrForbidden), errors.Is(err, auth.ErrTokenExpired):
		return "forbidden"
	default:
		return "error"
	}
}

func (c *conn) clientLeave(in protocol.Inbound) {
	if !c.allow(verbLeave, c.h.opts.EventRate) {
		c.h.obs.MessageIn(verbLeave, "rate_limited")
		c.rateLimited(in, verbLeave)
		return
	}
	if c.isAuto(in.Room) {
		// What the server put the connection in (its user, tenant, the
		// global room) the client cannot take it out of: leaving its own
		// user room must not escape what is sent to that room.
		c.h.obs.MessageIn(verbLeave, "forbidden")
		c.h.log.Warn("leave_forbidden", c.msgAttrs(slog.String("room", in.Room))...)
		c.replyError(in, CodeForbidden, "automatic rooms cannot be left")
		return
	}
	c.h.obs.MessageIn(verbLeave, "ok")
	c.h.leave(c, in.Room)
	c.ack(in)
}

// refresh replaces the credential in-band; only a valid token for the same
// user is accepted, and the expiry timer moves to the new token's expiry.
func (c *conn) refresh(in protocol.Inbound) {
	if !c.allow(verbAuth, c.h.opts.EventRate) {
		c.h.obs.MessageIn(verbAuth, "rate_limited")
		c.rateLimited(in, verbAuth)
		return
	}
	id, err := c.h.opts.Authenticator.Authenticate(c.ctx, in.Token)
	if err != nil {
		c.h.obs.MessageIn(verbAuth, "error")
		c.h.obs.AuthFailed(auth.Reason(err))
		c.h.log.Warn("auth_failed", c.msgAttrs(slog.String("source", auth.SourceMessage.String()), slog.String("reason", auth.Reason(err)))...)
		code := CodeUnauthorized
		if errors.Is(err, auth.ErrTokenExpired) {
			code = CodeTokenExpired
		}
		c.replyError(in, code, "invalid credentials")
		return
	}
	if id.UserID != c.identity().UserID {
		c.h.obs.MessageIn(verbAuth, "forbidden")
		c.h.obs.AuthFailed("different_user")
		c.h.log.Warn("auth_failed", c.msgAttrs(slog.String("source", auth.SourceMessage.String()), slog.String("reason", "different_user"))...)
		c.replyError(in, CodeUnauthorized, "token is for another user")
		return
	}
	c.h.obs.MessageIn(verbAuth, "ok")
	old := c.identity()
	c.ident.Store(&id)
	// meta is not rewritten: handlers past their deadline and other
	// goroutines read it for their log lines. The change is logged once.
	if id.TenantID != old.TenantID {
		c.h.log.Info("tenant_changed", c.msgAttrs(slog.String("new_tenant", id.TenantID))...)
	}
	c.scheduleExpiry(id.ExpiresAt)
	if id.TenantID != old.TenantID || !slices.Equal(id.Roles, old.Roles) {
		c.reauthorize(id)
	}
	c.ack(in)
}

// reauthorize brings the connection's rooms in line with a refreshed
// identity whose tenant or roles changed: the automatic rooms are those of
// the new identity, and every other room is checked against the room policy
// again, as if joined now. What the new token no longer grants is left.
func (c *conn) reauthorize(id auth.Identity) {
	auto, err := c.autoRooms(id)
	if err != nil {
		c.setReason("auto_rooms_failed")
		c.closeWith(CloseInternalError, "internal error", "")
		return
	}
	keep := make(map[string]bool, len(auto))
	for _, name := range auto {
		keep[name] = true
	}
	for _, name := range c.h.index.RoomsOf(c, nil) {
		if keep[name] {
			continue
		}
		if !c.isAuto(name) {
			ctx, cancel := context.WithTimeout(c.ctx, c.h.opts.HandlerTimeout)
			err := c.h.opts.Rooms.CanJoin(ctx, id, name)
			cancel()
			if err == nil {
				continue
			}
		}
		c.h.leave(c, name)
		c.h.log.Info("room_revoked", c.msgAttrs(slog.String("room", name))...)
	}
	for _, name := range auto {
		var err error
		if r := c.h.routeOf(name); c.tracker != nil && r.keeps() && !c.inRoom(name) {
			// As a server-side join, but not reported as one: the
			// transport learns where its client starts (Told).
			err = c.joinTracked(r, false)
		} else {
			err = c.h.join(c, name)
		}
		if err != nil {
			c.h.log.Error("auto_join_failed", c.msgAttrs(slog.String("room", name), slog.String("reason", err.Error()))...)
		}
	}
	c.setAuto(auto)
}

// msgAttrs are the log attributes of the message being handled: the
// connection and message ids that correlate its log lines.
func (c *conn) msgAttrs(extra ...any) []any {
	return c.meta.attrs(append([]any{slog.Uint64("msg_seq", c.seq)}, extra...)...)
}
