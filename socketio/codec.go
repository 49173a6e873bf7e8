package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// codec frames a hub's messages as Socket.IO packets of one namespace. It
// is a comparable value, the same for every connection of the namespace,
// so that the hub encodes a broadcast once per namespace (and once more
// for its native clients), not once per recipient.
//
// Inbound packets are decoded by the session, which hands the hub
// protocol.Inbound values: Decode is never called.
type codec struct {
	nsp        string
	mode       Mode
	errorEvent string
}

var _ protocol.Codec = codec{}

// Subprotocol implements protocol.Codec; Socket.IO negotiates none.
func (codec) Subprotocol() string { return "" }

// Decode implements protocol.Codec: a Socket.IO session decodes its
// packets itself.
func (codec) Decode(wire.Opcode, []byte) (protocol.Inbound, error) {
	return protocol.Inbound{}, fmt.Errorf("%w: Socket.IO packets are decoded by their session", protocol.ErrUnsupported)
}

// Encode implements protocol.Codec: one unit of frames, the packet's text
// then one binary frame per attachment. A message that cannot be a
// Socket.IO packet (an event with a reserved name such as "connect") yields
// no frame.
func (c codec) Encode(dst []wire.Frame, m *protocol.Message) []wire.Frame {
	var p sio.Packet
	switch m.Kind {
	case protocol.MsgEvent:
		p = sio.Packet{Type: sio.Event, Event: m.Event, Args: c.args(m.Data), Attachments: m.Binary}
	case protocol.MsgAck:
		var ok bool
		if p, ok = c.ack(m); !ok {
			return dst
		}
	case protocol.MsgError:
		p = c.error(m)
	case protocol.MsgWelcome:
		p = sio.NewConnect(c.nsp, m.Welcome.ConnID)
	case protocol.MsgBye:
		p = sio.NewDisconnect(c.nsp)
	default:
		return dst
	}
	p.Namespace = c.nsp
	text, err := p.AppendText(make([]byte, 0, 16+len(c.nsp)+len(p.Event)+argsLen(p.Args)+len(p.Data)))
	if err != nil {
		return dst
	}
	dst = append(dst, wire.Frame{Op: wire.OpText, Payload: text})
	for _, a := range p.Attachments {
		dst = append(dst, wire.Frame{Op: wire.OpBinary, Payload: a})
	}
	return dst
}

func argsLen(args []json.RawMessage) int {
	n := 0
	for _, a := range args {
		n += len(a) + 1
	}
	return n
}

// ack is the answer to a client message with an ack id: an ACK, or, in
// NestJS mode, the event of a returned {event, data}.
func (c codec) ack(m *protocol.Message) (sio.Packet, bool) {
	if c.mode == NestJS {
		if event, data, ok := nestEvent(m.Data); ok {
			return sio.Packet{Type: sio.Event, Event: event, Args: []json.RawMessage{data}, Attachments: m.Binary}, true
		}
	}
	if m.ID > sio.MaxAckID {
		return sio.Packet{}, false // the client asked for no ack (unaskedAck)
	}
	return sio.Packet{Type: sio.Ack, ID: m.ID, HasID: true, Args: c.args(m.Data), Attachments: m.Binary}, true
}

// error is the answer to a refused or failed message: the ack callback's
// {"error":{...}} when the message had an id, ErrorEvent otherwise (and
// always in NestJS mode).
func (c codec) error(m *protocol.Message) sio.Packet {
	if c.mode == NestJS {
		body := appendString([]byte(`{"status":"error","message":`), m.Text)
		body = append(appendString(append(body, `,"code":`...), m.Code), '}')
		return sio.Packet{Type: sio.Event, Event: c.errorEvent, Args: []json.RawMessage{body}}
	}
	body := appendString([]byte(`{"code":`), m.Code)
	body = append(appendString(append(body, `,"message":`...), m.Text), '}')
	if m.HasID && m.ID <= sio.MaxAckID {
		return sio.Packet{Type: sio.Ack, ID: m.ID, HasID: true, Args: []json.RawMessage{append(append([]byte(`{"error":`), body...), '}')}}
	}
	return sio.Packet{Type: sio.Event, Event: c.errorEvent, Args: []json.RawMessage{body}}
}

// args turns a hub message's data into a packet's arguments: no data, no
// argument; in AllArguments mode a JSON array is its elements; anything
// else is one argument.
func (c codec) args(data []byte) []json.RawMessage {
	if len(data) == 0 {
		return nil
	}
	data = jsJSON(data)
	if c.mode == AllArguments && data[0] == '[' {
		var elems []json.RawMessage
		if json.Unmarshal(data, &elems) == nil {
			return elems
		}
	}
	return []json.RawMessage{data}
}

// nestEvent reports a NestJS result {event, data}: a JSON object whose
// "event" member is a non-empty string. Nest emits it with the "data"
// member as the one argument, which JSON.stringify writes as null when it
// is absent.
func nestEvent(data []byte) (event string, arg json.RawMessage, ok bool) {
	if len(data) == 0 || data[0] != '{' || !bytes.Contains(data, []byte(`"event"`)) {
		return "", nil, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return "", nil, false
	}
	if json.Unmarshal(fields["event"], &event) != nil || event == "" {
		return "", nil, false
	}
	arg = fields["data"]
	if arg == nil {
		arg = json.RawMessage("null")
	}
	return event, jsJSON(arg), true
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, jsJSON(b)...)
}

// jsJSON rewrites the escapes encoding/json adds and JavaScript's
// JSON.stringify does not (\u003c, \u003e and \u0026 for <, > and &;
// \u2028 and \u2029) into the characters themselves: the same JSON value,
// as the reference server would write it, and shorter. data is valid
// JSON; it is returned as is when it has none of them.
func jsJSON(data []byte) []byte {
	i := bytes.Index(data, []byte(`\u`))
	if i < 0 {
		return data
	}
	out := make([]byte, 0, len(data))
	inString := false
	for j := 0; j < len(data); j++ {
		b := data[j]
		switch {
		case b == '"':
			inString = !inString
		case b == '\\' && inString && j+1 < len(data):
			if r, ok := goEscape(data[j+1:]); ok {
				out = utf8.AppendRune(out, r)
				j += 5
				continue
			}
			// Any other escape is copied whole, so that its second byte
			// (an escaped quote or backslash) is not taken for syntax.
			out = append(out, b, data[j+1])
			j++
			continue
		}
		out = append(out, b)
	}
	return out
}

// goEscape reads, after a backslash, one of the escapes encoding/json
// writes where JSON.stringify writes the character.
func goEscape(p []byte) (rune, bool) {
	if len(p) < 5 || p[0] != 'u' {
		return 0, false
	}
	switch string(p[1:5]) {
	case "003c":
		return '<', true
	case "003e":
		return '>', true
	case "0026":
		return '&', true
	case "2028":
		return '\u2028', true
	case "2029":
		return '\u2029', true
	}
	return 0, false
}
