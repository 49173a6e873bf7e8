package sio

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// Encoded is a packet in its wire form, produced once and sent as is to any
// number of recipients: Text is the complete Engine.IO text message (the
// "4" of an Engine.IO message, then the Socket.IO packet), Attachments are
// the binary messages that follow it, in order. Both are read-only once
// encoded.
type Encoded struct {
	Text        []byte
	Attachments [][]byte
}

// Size is the number of payload bytes e puts on a WebSocket, for send-queue
// accounting: a packet and its attachments are queued and dropped as one.
func (e Encoded) Size() int {
	n := len(e.Text)
	for _, a := range e.Attachments {
		n += len(a)
	}
	return n
}

// Packets returns e as Engine.IO packets (the text message, then one binary
// message per attachment), for a long-polling payload.
func (e Encoded) Packets(dst []eio.Packet) []eio.Packet {
	dst = append(dst, eio.Packet{Type: eio.Message, Data: e.Text[1:]})
	for _, a := range e.Attachments {
		dst = append(dst, eio.Packet{Type: eio.Message, Binary: true, Data: a})
	}
	return dst
}

// Encode encodes p once; see AppendText for the rules.
func (p *Packet) Encode() (Encoded, error) {
	text, err := p.AppendText(nil)
	if err != nil {
		return Encoded{}, err
	}
	return Encoded{Text: text, Attachments: p.Attachments}, nil
}

// AppendText appends p's Engine.IO text message to dst: "4", then
//
//	<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
//
// An event or ack with attachments is written as BINARY_EVENT or
// BINARY_ACK, one without as EVENT or ACK, whatever p.Type says of it. Args
// and Data must hold valid JSON (NewEvent, NewAck and the decoder make
// sure of it); AppendText checks what a peer's decoder would refuse: the
// namespace, the event name, an ack without an id, a payload the type does
// not allow, and attachments on other packets. Errors wrap ErrInvalid.
func (p *Packet) AppendText(dst []byte) ([]byte, error) {
	if err := p.checkEncodable(); err != nil {
		return dst, err
	}
	t := p.Type
	switch {
	case t.IsEvent() && len(p.Attachments) > 0:
		t = BinaryEvent
	case t.IsEvent():
		t = Event
	case t.IsAck() && len(p.Attachments) > 0:
		t = BinaryAck
	case t.IsAck():
		t = Ack
	}
	dst = append(dst, '0'+byte(eio.Message), '0'+byte(t))
	if len(p.Attachments) > 0 {
		dst = strconv.AppendInt(dst, int64(len(p.Attachments)), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != MainNamespace {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.HasID {
		dst = strconv.AppendUint(dst, p.ID, 10)
	}
	switch {
	case t.IsEvent():
		dst = append(dst, '[')
		if p.NumericEvent {
			dst = append(dst, p.Event...)
		} else {
			dst = appendQuoted(dst, p.Event)
		}
		for _, a := range p.Args {
			dst = append(dst, ',')
			dst = append(dst, a...)
		}
		dst = append(dst, ']')
	case t.IsAck():
		dst = append(dst, '[')
		for i, a := range p.Args {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, a...)
		}
		dst = append(dst, ']')
	default:
		dst = append(dst, p.Data...)
	}
	return dst, nil
}

func (p *Packet) checkEncodable() error {
	if p.Type > maxType {
		return invalid("unknown packet type %d", p.Type)
	}
	if ns := p.Namespace; ns != "" && (ns[0] != '/' || strings.IndexByte(ns, ',') >= 0 || !utf8.ValidString(ns)) {
		return invalid("namespace must start with / and hold no comma")
	}
	if p.HasID && p.ID > MaxAckID {
		return invalid("ack id over 2^53-1")
	}
	if len(p.Attachments) > maxAttachmentsCap {
		return invalid("more than %d attachments", maxAttachmentsCap)
	}
	if (p.Type.IsEvent() || p.Type.IsAck()) && p.Data != nil {
		return invalid("%s carries Args, not Data", p.Type)
	}
	switch {
	case p.Type.IsEvent():
		if p.NumericEvent && !isInteger([]byte(p.Event)) {
			return invalid("numeric event name must be an integer")
		}
		if !p.NumericEvent && IsReserved(p.Event) {
			return invalid("reserved event name %q", p.Event)
		}
		return nil
	case p.Type.IsAck():
		if !p.HasID {
			return invalid("ack without an id")
		}
		return nil
	}
	if len(p.Attachments) > 0 || len(p.Args) > 0 || p.HasID {
		return invalid("%s carries no arguments, attachments or ack id", p.Type)
	}
	switch {
	case p.Type == Disconnect && len(p.Data) > 0:
		return invalid("DISCONNECT carries no payload")
	case p.Type == ConnectError && len(p.Data) == 0:
		return invalid("CONNECT_ERROR needs a payload")
	}
	return nil
}

// appendQuoted appends s as a JSON string the way JavaScript's
// JSON.stringify writes it (no HTML escaping), so that frames compare equal
// to the reference server's; invalid UTF-8 becomes U+FFFD.
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\ufffd"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}

// NewEvent builds an EVENT for namespace nsp (MainNamespace when empty):
// each argument is marshalled with encoding/json (without HTML escaping), and
// every non-empty []byte inside the arguments becomes a binary attachment
// with a placeholder in its place, as the reference encoder does with
// Buffers. A json.RawMessage argument is copied as it is.
func NewEvent(nsp, event string, args ...any) (Packet, error) {
	p := Packet{Type: Event, Namespace: orMain(nsp), Event: event}
	if IsReserved(event) {
		return Packet{}, invalid("reserved event name %q", event)
	}
	return p, p.marshalArgs(args)
}

// NewAck builds the ACK answering ack id id in namespace nsp, its arguments
// marshalled as in NewEvent.
func NewAck(nsp string, id uint64, args ...any) (Packet, error) {
	p := Packet{Type: Ack, Namespace: orMain(nsp), ID: id, HasID: true}
	return p, p.marshalArgs(args)
}

func (p *Packet) marshalArgs(args []any) error {
	p.Args = make([]json.RawMessage, len(args))
	for i, a := range args {
		raw, atts, err := marshalArg(a, p.Attachments)
		if err != nil {
			return err
		}
		p.Args[i], p.Attachments = raw, atts
	}
	if len(p.Attachments) > 0 {
		p.Type += BinaryEvent - Event // EVENT→BINARY_EVENT, ACK→BINARY_ACK
	}
	return nil
}

// NewConnect builds the server's answer to a CONNECT: the namespace is
// joined and sid is the Socket.IO id of the socket (not the Engine.IO
// session id, which is a credential).
func NewConnect(nsp, sid string) Packet {
	data := appendQuoted([]byte(`{"sid":`), sid)
	return Packet{Type: Connect, Namespace: orMain(nsp), Data: append(data, '}')}
}

// NewConnectError builds the refusal of a CONNECT: {"message":message} and,
// when data is not nil, "data" marshalled with encoding/json. The official
// client hands both to its connect_error listeners and does not retry.
func NewConnectError(nsp, message string, data any) (Packet, error) {
	b := appendQuoted([]byte(`{"message":`), message)
	if data != nil {
		raw, err := marshalJSON(data)
		if err != nil {
			return Packet{}, err
		}
		b = append(append(b, `,"data":`...), raw...)
	}
	return Packet{Type: ConnectError, Namespace: orMain(nsp), Data: append(b, '}')}, nil
}

// NewDisconnect builds a DISCONNECT for namespace nsp.
func NewDisconnect(nsp string) Packet {
	return Packet{Type: Disconnect, Namespace: orMain(nsp)}
}

func orMain(nsp string) string {
	if nsp == "" {
		return MainNamespace
	}
	return nsp
}
