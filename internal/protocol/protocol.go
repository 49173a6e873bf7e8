// Package protocol is the seam between the hub and the bytes on the wire.
//
// The hub works with messages: Inbound values decoded from what a client
// sent, and Message values it asks a Codec to frame. Handlers never see the
// wire format. Native implements the wsgate.v1 protocol (docs/PROTOCOL.md);
// another protocol, such as Socket.IO over Engine.IO, is another Codec, with
// no handler change.
package protocol

import (
	"errors"

	"github.com/wsgate/wsgate/internal/wire"
)

// Kind is the type of an inbound message.
type Kind uint8

// Inbound kinds.
const (
	KindEvent Kind = iota + 1
	KindJoin
	KindLeave
	KindAuth
	// KindPong answers the heartbeat of a codec that is a Heartbeater.
	KindPong
)

// String returns the wire name of k.
func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindJoin:
		return "join"
	case KindLeave:
		return "leave"
	case KindAuth:
		return "auth"
	case KindPong:
		return "pong"
	}
	return "unknown"
}

// Inbound is one decoded client message.
type Inbound struct {
	Kind Kind
	// ID is the client's message id; HasID says whether one was sent, in which
	// case the client gets exactly one ack or error carrying it.
	ID    uint64
	HasID bool
	// Event names the handler (KindEvent).
	Event string
	// Room names the room (KindJoin, KindLeave).
	Room string
	// Data is the raw JSON payload, nil when absent. It aliases the frame.
	Data []byte
	// Binary holds attachments that came with the message, for protocols
	// that carry them. They alias the frames.
	Binary [][]byte
	// Token is the credential of a KindAuth message.
	Token string
	// Since is the stream position a join asks to recover from, when given.
	Since *Position
}

// Position is a place in a room's stream: the offset of a message and the
// epoch its offsets belong to. The zero Position is "no position".
type Position struct {
	Offset uint64
	Epoch  string
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p.Epoch == "" && p.Offset == 0 }

// MessageKind is the type of an outbound message.
type MessageKind uint8

// Outbound kinds.
const (
	// MsgEvent: an event, to one connection or through a room.
	MsgEvent MessageKind = iota + 1
	// MsgAck answers a client message with an id (Data: the reply).
	MsgAck
	// MsgError answers a client message (with its id, when it had one), or
	// tells the connection about a failure (Code, Text).
	MsgError
	// MsgWelcome is the first message after authentication.
	MsgWelcome
	// MsgBye precedes a close the server starts (Text: the reason).
	MsgBye
)

// Message is one outbound message, before any codec has framed it. Its
// byte slices are shared by every recipient and never modified.
type Message struct {
	Kind  MessageKind
	Event string
	// Room is set on an event delivered through a room.
	Room string
	// Data is a JSON value, already encoded, or nil.
	Data []byte
	// Binary attachments, for protocols that carry them.
	Binary [][]byte
	// Pos is the event's place in its room's stream, when the room keeps
	// history.
	Pos Position
	// ID and HasID reference the client message an ack or error answers.
	ID    uint64
	HasID bool
	// Code and Text are an error's code and message, or a bye's reason.
	Code, Text string
	// Welcome is the body of a MsgWelcome.
	Welcome Welcome
}

// Welcome is the first message a connection receives after authentication.
type Welcome struct {
	ConnID      string
	UserID      string
	ExpiresAt   int64 // Unix seconds, 0 when the credential does not expire
	HeartbeatMS int64 // server ping interval
	// Positions are the tops of the automatic rooms that keep history, so
	// that a client that receives nothing yet can still recover them.
	Positions []RoomPosition
}

// RoomPosition is a room's position in a welcome.
type RoomPosition struct {
	Room     string
	Position Position
}

// ErrInvalid is wrapped by every decode error: the frame is not a valid
// message. The hub answers INVALID_MESSAGE and changes nothing.
var ErrInvalid = errors.New("invalid message")

// ErrUnsupported is wrapped by the decode error of a frame the protocol
// does not carry at all (a binary frame in wsgate.v1): the connection is
// closed with 1003.
var ErrUnsupported = errors.New("unsupported frame")

// Codec decodes inbound messages and frames outbound ones for one wire
// protocol. A Codec is immutable and shared by every connection speaking it;
// the hub encodes a broadcast once per Codec (and compression) in use among
// its recipients, so Encode's frames are shared and must not be changed.
type Codec interface {
	// Subprotocol is the Sec-WebSocket-Protocol value that selects the codec.
	Subprotocol() string
	// Decode parses one data message (op is wire.OpText or wire.OpBinary).
	// Errors wrap ErrInvalid or ErrUnsupported. If the message carried an
	// id, the returned Inbound has it even on error, so the reply can
	// reference it.
	Decode(op wire.Opcode, p []byte) (Inbound, error)
	// Encode appends the frames of m to dst: one unit, queued and dropped
	// whole.
	Encode(dst []wire.Frame, m *Message) []wire.Frame
}

// Heartbeater is implemented by a Codec whose heartbeat is an application
// message (Engine.IO's ping packet, answered by its pong) rather than a
// WebSocket ping. The hub sends Heartbeat's frames where it would send a
// ping, on the same writer and timers, and takes an Inbound of KindPong as
// the answer.
type Heartbeater interface {
	Heartbeat() []wire.Frame
}
