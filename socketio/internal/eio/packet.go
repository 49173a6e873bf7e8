package eio

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"
)

// PacketType is the type of an Engine.IO packet, written on the wire as one
// ASCII digit.
type PacketType byte

// Packet types of Engine.IO v4.
const (
	Open    PacketType = 0 // server to client, first packet of a session: the handshake data
	Close   PacketType = 1 // either side: the transport can be closed
	Ping    PacketType = 2 // server to client (and "probe" from the client during an upgrade)
	Pong    PacketType = 3 // answer to a ping
	Message PacketType = 4 // application data: a Socket.IO packet
	Upgrade PacketType = 5 // client to server: the upgrade to WebSocket is complete
	Noop    PacketType = 6 // server to client: releases a pending long-polling GET
)

// maxType is the largest valid packet type.
const maxType = Noop

var typeNames = [...]string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}

// String returns the protocol's name for t.
func (t PacketType) String() string {
	if t <= maxType {
		return typeNames[t]
	}
	return fmt.Sprintf("PacketType(%d)", byte(t))
}

// Packet is one Engine.IO packet.
//
// Data is the payload after the type digit (empty when there is none). A
// binary message has Type Message, Binary set and the raw bytes in Data; only
// messages can be binary. Decoded packets alias the frame or body they were
// decoded from, except binary messages received as base64 text.
type Packet struct {
	Type   PacketType
	Binary bool
	Data   []byte
}

// Limits bounds what a decoder accepts from the peer. The zero value is safe:
// every field has a default.
type Limits struct {
	// MaxPayload is the largest WebSocket frame or long-polling body, in
	// bytes; it is the maxPayload announced in the handshake. Default
	// DefaultMaxPayload.
	MaxPayload int
	// MaxPackets is the largest number of packets in one long-polling body.
	// Default DefaultMaxPackets.
	MaxPackets int
}

// Defaults of Limits.
const (
	// DefaultMaxPayload is the reference server's maxHttpBufferSize.
	DefaultMaxPayload = 1_000_000
	// DefaultMaxPackets bounds the per-request work of a long-polling POST.
	// The official client packs queued packets by size only (up to
	// maxPayload), so this stays well above what a client that buffered a
	// burst of small events sends at once.
	DefaultMaxPackets = 1000
)

func (l Limits) maxPayload() int {
	if l.MaxPayload > 0 {
		return l.MaxPayload
	}
	return DefaultMaxPayload
}

func (l Limits) maxPackets() int {
	if l.MaxPackets > 0 {
		return l.MaxPackets
	}
	return DefaultMaxPackets
}

// ErrInvalid is wrapped by every decoding error: the peer broke the
// protocol and the session must be closed.
var ErrInvalid = errors.New("engine.io: invalid packet")

// ErrTooLarge is wrapped by the errors for a frame or body over
// Limits.MaxPayload and for a body with more than Limits.MaxPackets packets.
// It wraps ErrInvalid; an HTTP server answers it with 413.
var ErrTooLarge = fmt.Errorf("%w: payload too large", ErrInvalid)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// DecodeFrame decodes one WebSocket message. A binary frame is a binary
// message; a text frame is a type digit and its payload, or "b" and the
// base64 of a binary message (what a client that cannot send binary frames
// writes). Text must be valid UTF-8.
func DecodeFrame(frame []byte, binary bool, lim Limits) (Packet, error) {
	if len(frame) > lim.maxPayload() {
		return Packet{}, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, len(frame), lim.maxPayload())
	}
	if binary {
		return Packet{Type: Message, Binary: true, Data: frame}, nil
	}
	return decodeText(frame)
}

// decodeText decodes one packet in its text form, as found in a text frame
// or between separators in a long-polling payload.
func decodeText(b []byte) (Packet, error) {
	if len(b) == 0 {
		return Packet{}, invalid("empty packet")
	}
	if b[0] == 'b' {
		data, err := decodeBase64(b[1:])
		if err != nil {
			return Packet{}, err
		}
		return Packet{Type: Message, Binary: true, Data: data}, nil
	}
	if b[0] < '0' || b[0] > '0'+byte(maxType) {
		return Packet{}, invalid("unknown packet type %q", b[0])
	}
	if !utf8.Valid(b[1:]) {
		return Packet{}, invalid("text packet is not valid UTF-8")
	}
	return Packet{Type: PacketType(b[0] - '0'), Data: b[1:]}, nil
}

// decodeBase64 accepts standard base64 with or without padding: the
// official clients pad, other implementations may not.
func decodeBase64(s []byte) ([]byte, error) {
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	out := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(out, s)
	if err != nil {
		return nil, invalid("bad base64 in binary packet: %v", err)
	}
	return out[:n], nil
}

// AppendFrame appends p (whose Type is one of the constants above) as one
// WebSocket message and reports whether it must be sent as a binary frame. With b64 (a client that asked for base64 with
// the b64 query parameter) a binary message becomes a "b"+base64 text frame.
// A binary message's bytes are appended unchanged, so a caller that can send
// p.Data directly need not call it.
func AppendFrame(dst []byte, p Packet, b64 bool) (frame []byte, binary bool) {
	if p.Binary {
		if b64 {
			return appendBase64Packet(dst, p.Data), false
		}
		return append(dst, p.Data...), true
	}
	dst = append(dst, '0'+byte(p.Type))
	return append(dst, p.Data...), false
}

func appendBase64Packet(dst, data []byte) []byte {
	dst = append(dst, 'b')
	return base64.StdEncoding.AppendEncode(dst, data)
}
