package sio

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Decoder decodes the Socket.IO packets of one connection, in the order the
// Engine.IO messages arrive: a text message is a packet, and the binary
// messages that follow a binary packet's text are its attachments. A
// Decoder is not safe for concurrent use; a connection's read loop owns it.
//
// Every error wraps ErrInvalid and resets the Decoder; the caller closes the
// connection, as the reference server does on any decoding error.
type Decoder struct {
	lim Limits
	// pending is the binary packet whose attachments are arriving, on the
	// heap only while one is (an idle connection keeps a Decoder); waiting
	// is how many are still due (0: none pending).
	pending *Packet
	waiting int
	size    int // attachment bytes received for pending
}

// maxAttachmentsCap bounds Limits.MaxAttachments: placeholder numbers are
// tracked in a 64-bit set.
const maxAttachmentsCap = 64

// NewDecoder returns a Decoder enforcing lim (zero fields take their
// defaults; MaxAttachments is capped at 64).
func NewDecoder(lim Limits) *Decoder {
	lim = lim.withDefaults()
	lim.MaxAttachments = min(lim.MaxAttachments, maxAttachmentsCap)
	return &Decoder{lim: lim}
}

// Pending reports whether a binary packet is waiting for attachments.
func (d *Decoder) Pending() bool { return d.waiting > 0 }

// Reset drops a partly received binary packet.
func (d *Decoder) Reset() {
	d.pending, d.waiting, d.size = nil, 0, 0
}

// DecodeText decodes the payload of an Engine.IO text message (the "4" is
// not part of it). It returns the packet and true when the packet is
// complete; a binary packet returns false and completes with its last
// attachment (DecodeBinary). The packet aliases text.
func (d *Decoder) DecodeText(text []byte) (Packet, bool, error) {
	if d.waiting > 0 {
		d.Reset()
		return Packet{}, false, invalid("text message while a binary packet's attachments were due")
	}
	p, n, err := d.decode(text)
	if err != nil {
		return Packet{}, false, err
	}
	if n == 0 {
		return p, true, nil
	}
	p.Attachments = make([][]byte, 0, n)
	pending := new(Packet)
	*pending = p
	d.pending, d.waiting = pending, n
	return Packet{}, false, nil
}

// DecodeBinary takes the payload of an Engine.IO binary message: the next
// attachment of the pending binary packet. It returns the packet and true
// with the last one. The packet keeps data without copying it.
func (d *Decoder) DecodeBinary(data []byte) (Packet, bool, error) {
	if d.waiting == 0 {
		return Packet{}, false, invalid("binary message without a binary packet")
	}
	d.size += len(data)
	if d.size > d.lim.MaxAttachmentBytes {
		d.Reset()
		return Packet{}, false, invalid("attachments over %d bytes", d.lim.MaxAttachmentBytes)
	}
	d.pending.Attachments = append(d.pending.Attachments, data)
	if d.waiting--; d.waiting > 0 {
		return Packet{}, false, nil
	}
	p := *d.pending
	d.Reset()
	return p, true, nil
}

// decode parses one packet's text and returns it with the number of
// attachments still to come:
//
//	<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
func (d *Decoder) decode(text []byte) (Packet, int, error) {
	var p Packet
	if len(text) == 0 {
		return p, 0, invalid("empty packet")
	}
	if !utf8.Valid(text) {
		return p, 0, invalid("packet is not valid UTF-8")
	}
	if text[0] < '0' || text[0] > '0'+byte(maxType) {
		return p, 0, invalid("unknown packet type %q", text[0])
	}
	p.Type = PacketType(text[0] - '0')
	i := 1
	attachments := 0
	if p.Type == BinaryEvent || p.Type == BinaryAck {
		var err error
		if attachments, i, err = d.attachmentCount(text, i); err != nil {
			return p, 0, err
		}
	}
	i, err := d.namespace(text, i, &p)
	if err != nil {
		return p, 0, err
	}
	if i, err = ackID(text, i, &p); err != nil {
		return p, 0, err
	}
	if err := d.payload(text[i:], attachments, &p); err != nil {
		return Packet{}, 0, err
	}
	return p, attachments, nil
}

// attachmentCount reads "<n>-" at i: n declared attachments, 1 to the limit.
// The count is checked before anything waits for attachments, so a huge
// count costs nothing.
func (d *Decoder) attachmentCount(text []byte, i int) (n, next int, err error) {
	start := i
	for i < len(text) && isDigit(text[i]) && i-start < 3 {
		n = n*10 + int(text[i]-'0')
		i++
	}
	switch {
	case i == start || i >= len(text) || text[i] != '-':
		return 0, 0, invalid("binary packet without a valid attachment count")
	case n < 1:
		return 0, 0, invalid("binary packet declares no attachment")
	case n > d.lim.MaxAttachments:
		return 0, 0, invalid("binary packet declares more than %d attachments", d.lim.MaxAttachments)
	}
	return n, i + 1, nil
}

// namespace reads an optional "/name," at i. As in the reference decoder the
// name runs to the first comma or to the end of the packet.
func (d *Decoder) namespace(text []byte, i int, p *Packet) (int, error) {
	if i >= len(text) || text[i] != '/' {
		p.Namespace = MainNamespace
		return i, nil
	}
	start := i
	for i < len(text) && text[i] != ',' {
		if text[i] < 0x20 || text[i] == 0x7f {
			return 0, invalid("control character in namespace")
		}
		i++
	}
	if i-start > d.lim.MaxNamespace {
		return 0, invalid("namespace longer than %d bytes", d.lim.MaxNamespace)
	}
	p.Namespace = internNamespace(text[start:i])
	if i < len(text) {
		i++ // the comma
	}
	return i, nil
}

// internNamespace avoids an allocation for the main namespace.
func internNamespace(b []byte) string {
	if string(b) == MainNamespace {
		return MainNamespace
	}
	return string(b)
}

// maxAckDigits is the length of MaxAckID in decimal.
const maxAckDigits = 16

// ackID reads optional decimal digits at i: the ack id.
func ackID(text []byte, i int, p *Packet) (int, error) {
	start := i
	for i < len(text) && isDigit(text[i]) {
		if i-start == maxAckDigits {
			return 0, invalid("ack id longer than %d digits", maxAckDigits)
		}
		i++
	}
	if i == start {
		return i, nil
	}
	id, err := strconv.ParseUint(string(text[start:i]), 10, 64)
	if err != nil || id > MaxAckID {
		return 0, invalid("ack id over 2^53-1")
	}
	p.ID, p.HasID = id, true
	return i, nil
}

// payload checks the JSON data against the packet type and fills p.
func (d *Decoder) payload(data []byte, attachments int, p *Packet) error {
	switch p.Type {
	case Connect, ConnectError, Disconnect:
		if p.HasID {
			return invalid("%s with an ack id", p.Type)
		}
	case Ack, BinaryAck:
		if !p.HasID {
			return invalid("%s without an ack id", p.Type)
		}
	}
	if len(data) == 0 {
		switch p.Type {
		case Connect, Disconnect:
			return nil
		}
		return invalid("%s without a payload", p.Type)
	}
	s := scanner{data: data, maxDepth: d.lim.MaxDepth, attachments: attachments}
	start := s.skipSpace(0)
	switch p.Type {
	case Disconnect:
		return invalid("DISCONNECT with a payload")
	case Connect, ConnectError:
		if start >= len(data) || data[start] != '{' {
			return invalid("%s payload must be an object", p.Type)
		}
		end := s.value(start, 0)
		if err := s.finish(end); err != nil {
			return err
		}
		p.Data = json.RawMessage(data[start:end])
		return nil
	}
	if start >= len(data) || data[start] != '[' {
		return invalid("%s payload must be an array", p.Type)
	}
	// Most events have a handful of arguments: their spans stay on the stack.
	var buf [8][2]int
	end, spans := s.elements(start, 1, buf[:0])
	if err := s.finish(end); err != nil {
		return err
	}
	if s.used != 1<<attachments-1 {
		return invalid("binary packet declares %d attachments and uses %d", attachments, len(s.found))
	}
	if p.Type.IsEvent() {
		if len(spans) == 0 {
			return invalid("event without a name")
		}
		if err := d.eventName(data[spans[0][0]:spans[0][1]], p); err != nil {
			return err
		}
		spans = spans[1:]
	}
	p.Args = make([]json.RawMessage, len(spans))
	for j, sp := range spans {
		p.Args[j] = json.RawMessage(data[sp[0]:sp[1]])
	}
	p.placeholders = locate(s.found, spans)
	return nil
}

// finish checks that nothing but space follows the value ending at end.
func (s *scanner) finish(end int) error {
	if s.failed(end) {
		return s.err
	}
	if s.skipSpace(end) != len(s.data) {
		return invalid("data after the JSON payload")
	}
	return nil
}

// locate makes placeholder offsets relative to the argument holding them.
func locate(found []placeholder, spans [][2]int) []placeholder {
	for k := range found {
		for j, sp := range spans {
			if sp[0] <= found[k].start && found[k].end <= sp[1] {
				found[k].arg, found[k].start, found[k].end = j, found[k].start-sp[0], found[k].end-sp[0]
				break
			}
		}
	}
	return found
}

// eventName checks the first element of an event: a string that is not a
// reserved name, or an integer.
func (d *Decoder) eventName(raw []byte, p *Packet) error {
	switch {
	case raw[0] == '"':
		name, err := unquote(raw)
		if err != nil {
			return err
		}
		if len(name) > d.lim.MaxEventName {
			return invalid("event name longer than %d bytes", d.lim.MaxEventName)
		}
		if IsReserved(name) {
			return invalid("reserved event name %q", name)
		}
		p.Event = name
	case raw[0] == '-' || isDigit(raw[0]):
		if !isInteger(raw) {
			return invalid("numeric event name must be an integer of at most 15 digits")
		}
		p.Event, p.NumericEvent = string(raw), true
	default:
		return invalid("event name must be a string or a number")
	}
	return nil
}

// unquote returns the string JSON literal raw (already validated) holds.
func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("bad string: %v", err)
	}
	return s, nil
}

// isInteger reports whether b is 0 or -?[1-9][0-9]{0,14}: an integer a
// JavaScript peer holds exactly and writes back the same way.
func isInteger(b []byte) bool {
	if len(b) > 1 && b[0] == '-' && b[1] != '0' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 15 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
