package sio

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// PacketType is the type of a Socket.IO packet, the first character of its
// encoding.
type PacketType byte

// Packet types of Socket.IO v5.
const (
	Connect      PacketType = 0 // join a namespace (client, with an auth object) or the server's answer {"sid"}
	Disconnect   PacketType = 1 // leave a namespace
	Event        PacketType = 2 // an event: ["name", args...]
	Ack          PacketType = 3 // the answer to an event that carried an ack id: [args...]
	ConnectError PacketType = 4 // the server refuses a namespace: {"message", "data"}
	BinaryEvent  PacketType = 5 // an event with binary attachments
	BinaryAck    PacketType = 6 // an ack with binary attachments
)

const maxType = BinaryAck

var typeNames = [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}

// String returns the protocol's name for t.
func (t PacketType) String() string {
	if t <= maxType {
		return typeNames[t]
	}
	return fmt.Sprintf("PacketType(%d)", byte(t))
}

// IsEvent reports whether t is EVENT or BINARY_EVENT.
func (t PacketType) IsEvent() bool { return t == Event || t == BinaryEvent }

// IsAck reports whether t is ACK or BINARY_ACK.
func (t PacketType) IsAck() bool { return t == Ack || t == BinaryAck }

// MainNamespace is the namespace of a packet that names none.
const MainNamespace = "/"

// Packet is one Socket.IO packet.
//
// An event's name is in Event and its arguments, one raw JSON value each, in
// Args; an ack's arguments are in Args. CONNECT and CONNECT_ERROR carry a JSON
// object in Data. A binary packet's attachments are in Attachments, in the
// order of their placeholder numbers; its Args still hold the placeholders
// {"_placeholder":true,"num":N} where the bytes go (ArgJSON resolves them).
//
// A decoded packet aliases the frames it was decoded from.
type Packet struct {
	Type PacketType
	// Namespace starts with '/'; MainNamespace when the packet names none.
	Namespace string
	// ID is the ack id; HasID says whether there is one. An event with an id
	// asks for exactly one ack carrying it.
	ID    uint64
	HasID bool
	// Event is the event name. NumericEvent says the name was a JSON number
	// on the wire (Event then holds its decimal text).
	Event        string
	NumericEvent bool
	Args         []json.RawMessage
	Data         json.RawMessage
	Attachments  [][]byte

	// placeholders locates the placeholders inside Args (decoded packets).
	placeholders []placeholder
}

// placeholder is where attachment num sits: bytes [start, end) of Args[arg].
type placeholder struct {
	arg, start, end, num int
}

// ArgJSON returns argument i as JSON with every placeholder replaced by its
// attachment as a base64 JSON string, which is how encoding/json decodes a
// []byte field; without placeholders it returns Args[i] itself.
func (p *Packet) ArgJSON(i int) json.RawMessage {
	arg := p.Args[i]
	var out []byte
	last := 0
	for _, ph := range p.placeholders {
		if ph.arg != i {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(arg)+base64.StdEncoding.EncodedLen(len(p.Attachments[ph.num])))
		}
		out = append(out, arg[last:ph.start]...)
		out = append(out, '"')
		out = base64.StdEncoding.AppendEncode(out, p.Attachments[ph.num])
		out = append(out, '"')
		last = ph.end
	}
	if out == nil {
		return arg
	}
	return append(out, arg[last:]...)
}

// Limits bounds what a Decoder accepts. The zero value is safe: every field
// has a default.
type Limits struct {
	// MaxAttachments is the most binary attachments one packet may declare.
	// Default 10, the reference implementation's maxAttachments.
	MaxAttachments int
	// MaxAttachmentBytes bounds the total size of one packet's attachments.
	// Default 1,000,000 (the reference server's maxPayload); a server sets it
	// to its message size limit.
	MaxAttachmentBytes int
	// MaxNamespace is the longest namespace, in bytes. Default 128.
	MaxNamespace int
	// MaxEventName is the longest event name, in bytes. Default 128.
	MaxEventName int
	// MaxDepth is the deepest nesting of arrays and objects in a packet's
	// JSON. Default 64.
	MaxDepth int
}

// Defaults of Limits.
const (
	DefaultMaxAttachments     = 10
	DefaultMaxAttachmentBytes = 1_000_000
	DefaultMaxNamespace       = 128
	DefaultMaxEventName       = 128
	DefaultMaxDepth           = 64
)

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (l Limits) withDefaults() Limits {
	return Limits{
		MaxAttachments:     orDefault(l.MaxAttachments, DefaultMaxAttachments),
		MaxAttachmentBytes: orDefault(l.MaxAttachmentBytes, DefaultMaxAttachmentBytes),
		MaxNamespace:       orDefault(l.MaxNamespace, DefaultMaxNamespace),
		MaxEventName:       orDefault(l.MaxEventName, DefaultMaxEventName),
		MaxDepth:           orDefault(l.MaxDepth, DefaultMaxDepth),
	}
}

// MaxAckID is the largest ack id: the largest integer a JavaScript peer
// holds exactly (2^53-1).
const MaxAckID = 1<<53 - 1

// reserved are the event names the reference implementation refuses: they
// have a meaning of their own on one side or the other.
var reserved = [...]string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

// IsReserved reports whether name is an event name no packet may carry.
func IsReserved(name string) bool {
	for _, r := range reserved {
		if name == r {
			return true
		}
	}
	return false
}

// ErrInvalid is wrapped by every decoding error, and by the encoding errors
// for a packet a peer would refuse: the caller closes the connection (or,
// encoding, does not send).
var ErrInvalid = errors.New("socket.io: invalid packet")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
