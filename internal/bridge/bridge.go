// Package bridge lets a transport other than the hub's own WebSocket
// endpoint — Socket.IO over Engine.IO, whose sessions multiplex namespaces
// over long-polling or a WebSocket — serve connections of a hub: the hub
// keeps identity, rooms, handlers, limits and delivery; the transport keeps
// its framing and reads the client.
//
// Package hub implements Attach; a transport calls it once per logical
// connection. The split keeps the hub's public API free of transport
// plumbing.
package bridge

import (
	"context"
	"errors"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// Sink is where a bridged connection's frames go, with the semantics of
// wire.Writer: Send never blocks; a unit is queued whole or refused (Full
// past the bounds, NotOpen for a broadcast before the Open unit, Closed
// once closing); Close queues the end of the stream (after final, or before
// what is queued when now is set) and reports whether it was the first.
type Sink interface {
	Send(class wire.Class, frames ...wire.Frame) wire.Result
	SendBatch(b *wire.Batch, class wire.Class, frames ...wire.Frame) wire.Result
	Close(code wire.StatusCode, reason string, now bool, final ...wire.Frame) bool
	// Abort drops the connection at once, without a goodbye (Shutdown's
	// deadline passed, say). The hub also calls it when it releases the
	// connection after Closed: it must be idempotent.
	Abort()
}

// Request is what the hub keeps of the request that opened the connection.
type Request struct {
	// Ctx is the context the connection's handlers derive from, already
	// detached from the request's cancellation.
	Ctx                                                context.Context
	ClientIP, UserAgent, Origin, Host, Path, RequestID string
}

// Conn is the hub's side of a bridged connection.
type Conn interface {
	// ID is the connection's id (what the client is told, and logs show).
	ID() string
	// Handle handles one inbound message, with the hub's rate limits,
	// validation, room policy and handlers. The transport calls it from one
	// goroutine at a time, in the order the client sent.
	Handle(in protocol.Inbound)
	// Closed tells the hub the connection is over: the client left, the
	// transport failed or finished the close the hub asked for. The hub
	// releases everything it held; reason goes to the log and metrics.
	Closed(reason string)
}

// Attach starts a connection of hub h (a *hub.Hub) authenticated as id:
// it applies the hub's admission (a refusal is returned as the error, a
// *protocol.Refusal when the hub's Admit gave one), joins the automatic
// rooms and queues the welcome, encoded by codec, to sink. Set by package
// hub; nil until it is linked in.
var Attach func(h any, req Request, id auth.Identity, codec protocol.Codec, sink Sink) (Conn, error)

// ErrNotAHub is returned by Attach for an h that is not a *hub.Hub.
var ErrNotAHub = errors.New("bridge: not a hub")
