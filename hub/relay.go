package hub

import (
	"encoding/binary"
	"errors"

	"github.com/wsgate/wsgate/internal/protocol"
)

// The relay format is what one node publishes and every node subscribed to
// the topic receives. It is protocol-neutral — the event, not any codec's
// frame — so nodes serving clients of different protocols share a cluster,
// and each node encodes a message once per codec in use among its local
// recipients. The broker authenticates it (adapter/redis signs it).
//
//	version  byte (relayVersion)
//	kind     byte (relayMessage, relayDisconnect)
//	except   string: a connection id left out, or empty
//	then, for relayMessage:
//	event, room  string
//	offset   uvarint, epoch string (a stream position, or 0 and empty)
//	data     bytes (JSON, or empty)
//	binary   uvarint count, then each as bytes
//	carrier  bytes: the publishing node's trace context (Tracer.Publish),
//	         at most MaxTraceCarrier, empty without a tracer
//	for relayDisconnect: the bye reason, to the end;
//	for relayJoin and relayLeave: the room name, to the end.
//
// A string or bytes field is a uvarint length and the bytes.
const relayVersion = 3

// Relay kinds.
const (
	relayMessage    byte = 0 // an event for every local member
	relayDisconnect byte = 1 // close every local connection of the topic, with a bye reason
	relayJoin       byte = 2 // add every local connection of the user topic to a room
	relayLeave      byte = 3 // remove them from a room
)

// maxRelayAttachments bounds what a relayed message may claim to carry.
const maxRelayAttachments = 64

var errRelay = errors.New("hub: malformed relay payload")

func appendRelayString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendRelayBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// appendRelayMessage appends the relay form of an event and its trace
// carrier.
func appendRelayMessage(dst []byte, except string, m *protocol.Message, carrier []byte) []byte {
	dst = append(dst, relayVersion, relayMessage)
	dst = appendRelayString(dst, except)
	dst = appendRelayString(dst, m.Event)
	dst = appendRelayString(dst, m.Room)
	dst = binary.AppendUvarint(dst, m.Pos.Offset)
	dst = appendRelayString(dst, m.Pos.Epoch)
	dst = appendRelayBytes(dst, m.Data)
	dst = binary.AppendUvarint(dst, uint64(len(m.Binary)))
	for _, b := range m.Binary {
		dst = appendRelayBytes(dst, b)
	}
	return appendRelayBytes(dst, carrier)
}

// appendRelayDisconnect appends the relay form of a disconnect.
func appendRelayDisconnect(dst []byte, reason string) []byte {
	dst = append(dst, relayVersion, relayDisconnect)
	dst = appendRelayString(dst, "")
	return append(dst, reason...)
}

// appendRelayRoom appends the relay form of a membership change.
func appendRelayRoom(dst []byte, kind byte, name string) []byte {
	dst = append(dst, relayVersion, kind)
	dst = appendRelayString(dst, "")
	return append(dst, name...)
}

// relayReader decodes fields in order; the first error sticks.
type relayReader struct {
	p   []byte
	err error
}

func (r *relayReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.err = errRelay
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *relayReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.p)) {
		r.err = errRelay
		return nil
	}
	b := r.p[:n:n]
	r.p = r.p[n:]
	return b
}

// relay is a decoded relay payload; its slices alias the payload, which
// the broker hands over for the hub to keep.
type relay struct {
	kind    byte
	except  string
	msg     protocol.Message // relayMessage
	carrier []byte           // relayMessage: the publisher's trace context, or empty
	reason  string           // relayDisconnect; the room of relayJoin and relayLeave
}

func parseRelay(p []byte) (relay, error) {
	var rl relay
	if len(p) < 2 || p[0] != relayVersion {
		return rl, errRelay
	}
	rl.kind = p[1]
	r := relayReader{p: p[2:]}
	rl.except = string(r.bytes())
	switch rl.kind {
	case relayDisconnect, relayJoin, relayLeave:
		rl.reason = string(r.p)
		return rl, r.err
	case relayMessage:
	default:
		return rl, errRelay
	}
	m := &rl.msg
	m.Kind = protocol.MsgEvent
	m.Event = string(r.bytes())
	m.Room = string(r.bytes())
	m.Pos.Offset = r.uvarint()
	m.Pos.Epoch = string(r.bytes())
	if data := r.bytes(); len(data) > 0 {
		m.Data = data
	}
	n := r.uvarint()
	if n > maxRelayAttachments {
		return rl, errRelay
	}
	for range n {
		m.Binary = append(m.Binary, r.bytes())
	}
	if rl.carrier = r.bytes(); len(rl.carrier) > MaxTraceCarrier {
		return rl, errRelay
	}
	if r.err == nil && len(r.p) != 0 {
		r.err = errRelay
	}
	return rl, r.err
}
