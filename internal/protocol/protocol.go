// Package protocol is the seam between the hub and the bytes on the wire.
//
// The hub works with Inbound values and asks a Codec to frame its outbound
// messages; handlers never see the wire format. Native implements the wsgate.v1
// protocol (docs/PROTOCOL.md). A second protocol, such as Socket.IO over
// Engine.IO, is another Codec selected by subprotocol, with no handler change.
package protocol

import "errors"

// Kind is the type of an inbound envelope.
type Kind uint8

// Inbound kinds.
const (
	KindEvent Kind = iota + 1
	KindJoin
	KindLeave
	KindAuth
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
	// Token is the credential of a KindAuth message.
	Token string
}

// ErrInvalid is wrapped by every decode error: the frame is not a valid
// envelope. The hub answers INVALID_MESSAGE and changes nothing.
var ErrInvalid = errors.New("invalid message")

// Codec decodes inbound frames and frames outbound messages for one
// subprotocol. Append methods append a complete frame to dst and return it;
// data arguments are JSON values already encoded by the caller, so a broadcast
// payload is encoded once whatever the number of recipients.
type Codec interface {
	// Subprotocol is the Sec-WebSocket-Protocol value that selects the codec.
	Subprotocol() string
	// Decode parses one text frame. Errors wrap ErrInvalid. If the frame
	// carried a message id, the returned Inbound has it even on error so
	// the reply can reference it.
	Decode(frame []byte) (Inbound, error)
	AppendEvent(dst []byte, event, room string, data []byte) []byte
	AppendAck(dst []byte, id uint64, data []byte) []byte
	AppendError(dst []byte, id uint64, hasID bool, code, message string) []byte
	AppendWelcome(dst []byte, w Welcome) []byte
	AppendBye(dst []byte, reason string) []byte
}

// Welcome is the first message a connection receives after authentication.
type Welcome struct {
	ConnID      string
	UserID      string
	ExpiresAt   int64 // Unix seconds, 0 when the credential does not expire
	HeartbeatMS int64 // server ping interval
}
