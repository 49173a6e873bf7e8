// Package bridge lets a transport other than the hub's own WebSocket
// endpoint — Socket.IO over Engine.IO, whose sessions multiplex namespaces
// over long-polling or a WebSocket — serve connections of a hub: the hub
// keeps identity, rooms, handlers, limits and delivery; the transport keeps
// its framing and reads the client.
//
// Package hub implements Attach, Connect, SettingsOf, Attachments and
// Emit; a transport calls Connect (or, with an identity established
// elsewhere, Attach) once per logical connection. The split keeps the
// hub's public API free of transport plumbing.
package bridge

import (
	"context"
	"errors"
	"net/http"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// Sink is where a bridged connection's frames go, with the semantics of
// wire.Writer: Send never blocks; a unit is queued whole or refused (Full
// past the bounds, NotOpen for a broadcast before the Open unit, Closed
// once closing); Close queues the end of the stream (after final, or before
// what is queued when now is set) and reports whether it was the first.
//
// The hub calls a Sink from any goroutine, some of them holding the hub's
// locks (a broadcast's fan-out): its methods must not call back into the
// hub, and Conn.Closed in particular must be called from elsewhere.
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
	// goroutine at a time, in the order the client sent; it returns once
	// the message is answered (or its handler's deadline passed).
	Handle(in protocol.Inbound)
	// HandleInvalid answers a message the transport could frame but not
	// map onto an Inbound (a join without a room name, say) as the hub
	// answers a frame it cannot decode: INVALID_MESSAGE, with in's id when
	// it has one, after the message rate limit; reason goes to the log.
	HandleInvalid(in protocol.Inbound, reason error)
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

// Credential is what a transport has of a client's credential when it
// starts a connection: a token received in-band, and the HTTP request that
// opened the transport's session.
type Credential struct {
	// Token is the credential the client sent in-band (Socket.IO's CONNECT
	// payload); empty when it sent none.
	Token string
	// Request opened the transport's session; Connect does not keep it.
	// Without Token, the hub's Options.Tokens extractor reads the
	// credential from it (its Authorization header, cookie... as the hub
	// is configured). It also gives the hub what its own handshake takes
	// from the upgrade request: the client's address (Options.ClientIP),
	// user agent, origin, path and request id for the log, the Tracer's
	// handshake and Options.ConnContext. Required.
	Request *http.Request
	// Resume, when set, resumes the session of a connection that ended:
	// its rooms are joined again and what it missed of its rooms with
	// history is replayed after the welcome, all or nothing (see Resume).
	Resume *Resume
}

// Resume is a session to resume: the rooms a connection was in and, for
// those with history, the position its client last received.
type Resume struct {
	// PrevIDs are the ids of the session's earlier connections, the
	// latest first: a message its publisher sent to everyone but one of
	// them is not replayed.
	PrevIDs []string
	// UserID and TenantID are the identity the session belonged to: a
	// credential of another user or tenant resumes nothing.
	UserID, TenantID string
	// Rooms are the rooms to join again.
	Rooms []ResumeRoom
}

// ResumeRoom is one room of a Resume.
type ResumeRoom struct {
	Room string
	// ByClient: the client joined the room itself, so the hub's room
	// policy decides again, as for a fresh join. A room the server joined
	// the connection to is joined again as the server did (automatic
	// rooms are those of the new identity in any case).
	ByClient bool
	// Auto: an automatic room of the previous connection, joined again
	// only when it is one of the new identity's.
	Auto bool
	// Since is the position the client last received of a room with
	// history; nil when it is unknown, which fails the recovery.
	Since *protocol.Position
}

// Established describes a connection to its Tracker before its welcome.
type Established struct {
	ConnID, UserID, TenantID string
	Recovered                bool
}

// Tracker is implemented by a Sink that keeps what it was sent of the
// rooms with history (Socket.IO's connection state recovery, which tells
// the client a position with every event). The hub calls its methods as
// it calls the Sink's; Joined and Left may block briefly (they write where
// another node can read them) and are never called under the hub's locks.
type Tracker interface {
	Sink
	// SendAt queues an event of a room with history at pos, as
	// SendBatch queues a broadcast (b may be nil); the Tracker records pos
	// once the event is queued. Events of one room come in offset order.
	SendAt(b *wire.Batch, room string, pos protocol.Position, frames ...wire.Frame) wire.Result
	// Told records where the client starts in a room without an event of
	// it: the top of a room it joined or of an automatic room (what the
	// welcome or the join's answer carried), or the position a resume
	// continues from. The events sent afterwards take it further.
	Told(room string, pos protocol.Position)
	// Joined records that the connection joined a room after it was
	// established, by its client's request or by the server's (byClient
	// false); Left that it left one. Automatic rooms are not reported.
	Joined(room string, byClient bool)
	Left(room string)
	// Established is called once the connection's rooms are joined and
	// their start positions told, before the welcome is sent; it may
	// block briefly. With a Resume, recovered says whether every missed
	// event of every room with history follows the welcome.
	Established(e Established)
	// Lost tells that the hub could not give the client every event of a
	// room with history after what it sent (a gap history could not
	// fill): the client should reconnect and recover.
	Lost(room string)
}

// Connect authenticates cred with hub h's own Authenticator (the auth
// failures counted, logged and traced as the hub's handshake does), then
// starts the connection as Attach does. A refusal is a *protocol.Refusal
// with the code a client is told: UNAUTHORIZED, TOKEN_EXPIRED, UNAVAILABLE
// (the keys could not be fetched), CONNECTION_LIMIT_EXCEEDED or another
// code from the hub's Admit. Set by package hub.
var Connect func(h any, cred Credential, codec protocol.Codec, sink Sink) (Conn, error)

// Settings are the hub options a transport applies itself.
type Settings struct {
	// MaxMessageBytes is the largest inbound message (Options.MaxMessageBytes).
	MaxMessageBytes int64
}

// SettingsOf returns hub h's Settings. Set by package hub.
var SettingsOf func(h any) (Settings, error)

// Attached is implemented by a value that carries binary attachments
// beside its JSON, for protocols that have them (Socket.IO): its JSON holds
// a placeholder {"_placeholder":true,"num":N} where attachment N goes. A
// handler's result that implements it is acked with its attachments; the
// wsgate.v1 protocol has no attachments and sends the JSON alone.
type Attached interface {
	BinaryAttachments() [][]byte
}

// Attachments returns the binary attachments of the message the handler
// whose context is ctx handles, nil when it had none or ctx is not a
// handler's. Set by package hub.
var Attachments func(ctx context.Context) [][]byte

// Emit sends event with data (JSON, with the attachments of an Attached
// value) to the connection of the handler whose context is ctx. Set by
// package hub.
var Emit func(ctx context.Context, event string, data any) error

// ErrNotAHub is returned by Attach for an h that is not a *hub.Hub.
var ErrNotAHub = errors.New("bridge: not a hub")
