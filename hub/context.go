package hub

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/room"
)

// Context is what a handler receives: a context.Context (derived from the
// connection's, see Options.ConnContext, and cancelled at the handler
// deadline or when the connection ends) plus the connection and message it
// runs for.
//
// A context derived from it with the context package loses the methods;
// WithContext keeps them (ctx = ctx.WithContext(derived), as with
// http.Request.WithContext), and FromContext recovers them from any derived
// context.
type Context struct {
	context.Context
	call *call
}

// call is the message a handler runs for.
type call struct {
	c     *conn
	event string
	msgID uint64
	seq   uint64
	// binary holds the message's attachments (a bridged protocol's).
	binary [][]byte
}

type callKey struct{}

// FromContext returns the Context of the handler call ctx derives from, with
// ctx as its context.Context, and false when ctx is not a handler's.
func FromContext(ctx context.Context) (Context, bool) {
	cl, ok := ctx.Value(callKey{}).(*call)
	if !ok {
		return Context{}, false
	}
	return Context{Context: ctx, call: cl}, true
}

// WithContext returns x with ctx as its context.Context; ctx should derive
// from x.
func (x Context) WithContext(ctx context.Context) Context { return Context{Context: ctx, call: x.call} }

// ConnID returns the connection's id.
func (x Context) ConnID() string { return x.call.c.id }

// Event returns the name of the event being handled.
func (x Context) Event() string { return x.call.event }

// Identity returns who the connection acts for.
func (x Context) Identity() auth.Identity { return x.call.c.identity() }

// Conn describes the connection: its id, identity, and what the hub kept of
// its upgrade request.
func (x Context) Conn() ConnInfo { return x.call.c.info() }

// Logger returns the hub's logger with the connection and message ids, user
// and tenant attached.
func (x Context) Logger() *slog.Logger {
	return x.call.c.h.log.With(x.call.c.meta.attrs(slog.Uint64("msg_seq", x.call.seq))...)
}

// Hub returns the hub serving the connection.
func (x Context) Hub() *Hub { return x.call.c.h }

// Rooms returns the rooms the connection is in, in no particular order.
func (x Context) Rooms() []string { return x.call.c.h.index.RoomsOf(x.call.c, nil) }

// InRoom reports whether the connection is in room.
func (x Context) InRoom(name string) bool {
	for _, r := range x.Rooms() {
		if r == name {
			return true
		}
	}
	return false
}

// SetState stores value under key for the rest of the connection's life,
// for the handlers of its later messages (and its OnDisconnect hook, through
// ConnInfo). Keys compare like map keys; use a type of your own.
func (x Context) SetState(key, value any) { x.call.c.setState(key, value) }

// State returns what SetState stored under key, or nil.
func (x Context) State(key any) any { return x.call.c.state(key) }

// Join adds the connection to room without consulting the room policy: the
// server decides. The per-connection room limit still applies.
func (x Context) Join(name string) error {
	if !room.Valid(name) {
		return fmt.Errorf("hub: %w", room.ErrInvalidName)
	}
	return x.call.c.h.joinBy(x.call.c, name)
}

// Leave removes the connection from room.
func (x Context) Leave(name string) { x.call.c.h.leave(x.call.c, name) }

// Emit sends an event to this connection only.
func (x Context) Emit(event string, data any) error {
	m, err := eventMessage(event, "", data)
	if err != nil {
		return err
	}
	x.call.c.send(&m)
	return nil
}

// Broadcast sends an event to every member of room on every node, this
// connection included, like Hub.Broadcast; pass Except(ctx.ConnID()) for
// "everyone else in the conversation".
func (x Context) Broadcast(room, event string, data any, opts ...BroadcastOption) error {
	return x.call.c.h.Broadcast(x, room, event, data, opts...)
}

// ConnInfo describes a connection to hooks and handlers.
type ConnInfo struct {
	ConnID   string
	Identity auth.Identity
	Request  RequestInfo
	Started  time.Time
	// State returns what handlers stored with Context.SetState.
	State func(key any) any
}

// RequestInfo is what the hub keeps of a connection's upgrade request:
// nothing that carries a credential. Anything else a service needs from the
// request (a header, a value its middleware set) it takes into the
// connection's context with Options.ConnContext.
type RequestInfo struct {
	// ClientIP is Options.ClientIP's answer for the request.
	ClientIP  string
	UserAgent string
	Origin    string
	Host      string
	Path      string
	// RequestID is the request's X-Request-ID, when it was well-formed.
	RequestID string
}

func (c *conn) info() ConnInfo {
	return ConnInfo{
		ConnID:   c.id,
		Identity: c.identity(),
		Request: RequestInfo{
			ClientIP: c.meta.ip, UserAgent: c.meta.userAgent, Origin: c.meta.origin,
			Host: c.meta.host, Path: c.meta.path, RequestID: c.meta.requestID,
		},
		Started: c.started,
		State:   c.state,
	}
}

func (c *conn) setState(key, value any) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.values == nil {
		c.values = make(map[any]any, 2)
	}
	c.values[key] = value
}

func (c *conn) state(key any) any {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.values[key]
}
