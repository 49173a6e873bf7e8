package protocol

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the envelope scanner behind Native.Decode. encoding/json is
// not strict enough for an envelope: it matches keys case-insensitively
// ("Type" fills type) and lets the last of two equal keys win, so one frame
// could read differently to wsgate and to a proxy or logger in front of it.
// The scanner accepts exactly RFC 8259 JSON, one object, with each known key
// spelled exactly and at most once.

// maxDepth bounds the nesting of a data value, as encoding/json does, so
// that a frame of brackets cannot exhaust the stack.
const maxDepth = 10000

// Envelope keys, as bits of rawEnvelope.seen.
const (
	keyType = 1 << iota
	keyID
	keyEvent
	keyRoom
	keyData
)

// rawEnvelope is what scanning found. Strings are decoded; typ, id and
// data alias the frame when they can (typ is only compared, so it need not
// become a string).
type rawEnvelope struct {
	event, room   string
	typ, id, data []byte
	seen          uint8
}

// envelopeKey returns the bit of an exactly spelled envelope key, or 0.
// raw is the key between its quotes, escapes undecoded: a key written with
// an escape is not spelled exactly, and is refused like an unknown one.
func envelopeKey(raw []byte) uint8 {
	switch string(raw) {
	case "type":
		return keyType
	case "id":
		return keyID
	case "event":
		return keyEvent
	case "room":
		return keyRoom
	case "data":
		return keyData
	}
	return 0
}

// scanEnvelope fills e from frame. Its errors wrap ErrInvalid.
func scanEnvelope(frame []byte, e *rawEnvelope) error {
	s := scanner{b: frame}
	s.space()
	if !s.eat('{') {
		return invalid("malformed envelope")
	}
	s.space()
	if !s.eat('}') {
		for {
			if err := s.member(e); err != nil {
				return err
			}
			s.space()
			if s.eat(',') {
				s.space()
				continue
			}
			if s.eat('}') {
				break
			}
			return invalid("malformed envelope")
		}
	}
	s.space()
	if s.i != len(s.b) {
		return invalid("trailing data after envelope")
	}
	return nil
}

// member scans one "key": value pair of the envelope.
func (s *scanner) member(e *rawEnvelope) error {
	raw, ok := s.rawString()
	if !ok {
		return invalid("malformed envelope")
	}
	key := envelopeKey(raw)
	switch {
	case key == 0:
		return invalid("unknown field")
	case e.seen&key != 0:
		return invalid("duplicate field")
	}
	e.seen |= key
	s.space()
	if !s.eat(':') {
		return invalid("malformed envelope")
	}
	s.space()
	switch key {
	case keyType:
		e.typ, ok = s.bytesOrNull()
	case keyEvent:
		e.event, ok = s.stringOrNull()
	case keyRoom:
		e.room, ok = s.stringOrNull()
	case keyID:
		e.id, ok = s.value()
	case keyData:
		e.data, ok = s.value()
	}
	if !ok {
		return invalid("malformed envelope")
	}
	return nil
}

// scanAuthData returns the token of an auth message's data, which must be
// an object with exactly one key, "token", whose value is a string.
func scanAuthData(data []byte) (string, bool) {
	s := scanner{b: data}
	if !s.eat('{') {
		return "", false
	}
	s.space()
	raw, ok := s.rawString()
	if !ok || string(raw) != "token" {
		return "", false
	}
	s.space()
	if !s.eat(':') {
		return "", false
	}
	s.space()
	if s.peek() != '"' {
		return "", false
	}
	token, ok := s.str()
	if !ok {
		return "", false
	}
	s.space()
	return token, s.eat('}') && s.i == len(s.b)
}

// scanJoinData returns the position of a join's data, which must be
// {"since": {"offset": N, "epoch": "E"}}: every key spelled exactly and
// present once, N an integer in [0, MaxID], E valid UTF-8 of at most
// MaxEpochLen bytes.
func scanJoinData(data []byte) (Position, bool) {
	s := scanner{b: data}
	if !s.eat('{') {
		return Position{}, false
	}
	s.space()
	raw, ok := s.rawString()
	if !ok || string(raw) != "since" {
		return Position{}, false
	}
	s.space()
	if !s.eat(':') {
		return Position{}, false
	}
	s.space()
	p, ok := s.position()
	if !ok {
		return Position{}, false
	}
	s.space()
	return p, s.eat('}') && s.i == len(s.b)
}

// position scans {"offset": N, "epoch": "E"}, in either order.
func (s *scanner) position() (Position, bool) {
	var p Position
	if !s.eat('{') {
		return p, false
	}
	var seen [2]bool
	for n := 0; n < 2; n++ {
		s.space()
		if n > 0 && !s.eat(',') {
			return p, false
		}
		s.space()
		raw, ok := s.rawString()
		if !ok {
			return p, false
		}
		s.space()
		if !s.eat(':') {
			return p, false
		}
		s.space()
		switch string(raw) {
		case "offset":
			var num []byte
			if seen[0] || s.peek() == '-' {
				return p, false
			}
			if num, ok = s.value(); ok {
				p.Offset, ok = parseID(num)
			}
			seen[0] = true
		case "epoch":
			if seen[1] || s.peek() != '"' {
				return p, false
			}
			p.Epoch, ok = s.str()
			ok = ok && len(p.Epoch) <= MaxEpochLen && utf8.ValidString(p.Epoch)
			seen[1] = true
		default:
			return p, false
		}
		if !ok {
			return p, false
		}
	}
	s.space()
	return p, s.eat('}')
}

// scanner walks a JSON text. Every method leaves i after what it consumed
// and reports false on input that is not valid JSON.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value skips one JSON value, checking it, and returns its bytes.
func (s *scanner) value() ([]byte, bool) {
	start := s.i
	if !s.skipValue(0) {
		return nil, false
	}
	return s.b[start:s.i:s.i], true
}

// stringOrNull decodes a string value; null stands for an absent field,
// as it always has for the envelope's string fields.
func (s *scanner) stringOrNull() (string, bool) {
	if s.peek() == 'n' {
		return "", s.literal("null")
	}
	if s.peek() != '"' {
		return "", false
	}
	return s.str()
}

// bytesOrNull is stringOrNull for a value that is only compared: the bytes
// between the quotes when there is no escape, without a copy.
func (s *scanner) bytesOrNull() ([]byte, bool) {
	if s.peek() == 'n' {
		return nil, s.literal("null")
	}
	raw, ok := s.rawString()
	if !ok || bytes.IndexByte(raw, '\\') < 0 {
		return raw, ok
	}
	s.i -= len(raw) + 2
	str, ok := s.str()
	return []byte(str), ok
}

// rawString returns the bytes between the quotes of a string, escapes
// left as they are, after checking it.
func (s *scanner) rawString() ([]byte, bool) {
	start := s.i + 1
	if s.peek() != '"' || !s.skipString() {
		return nil, false
	}
	return s.b[start : s.i-1], true
}

// str decodes a string. Without escapes, the common case, it is one
// allocation; with them, the escapes are decoded as encoding/json does
// (a lone surrogate becomes U+FFFD).
func (s *scanner) str() (string, bool) {
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return string(s.b[start:j]), true
		case c == '\\':
			return s.unescape(start, j)
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

// unescape decodes a string from start, whose first escape is at j.
func (s *scanner) unescape(start, j int) (string, bool) {
	out := append(make([]byte, 0, j-start+16), s.b[start:j]...)
	for j < len(s.b) {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(s.b) {
			return "", false
		}
		switch e := s.b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, ok := s.unicodeEscape(j)
			if !ok {
				return "", false
			}
			out = utf8.AppendRune(out, r)
			j += n
			continue
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// unicodeEscape decodes the \uXXXX at j, with the low half that follows a
// high surrogate, and returns the rune and the bytes it took.
func (s *scanner) unicodeEscape(j int) (rune, int, bool) {
	r, ok := hex4(s.b, j+2)
	if !ok {
		return 0, 0, false
	}
	if !utf16.IsSurrogate(r) {
		return r, 6, true
	}
	if j+12 <= len(s.b) && s.b[j+6] == '\\' && s.b[j+7] == 'u' {
		if lo, ok := hex4(s.b, j+8); ok {
			if pair := utf16.DecodeRune(r, lo); pair != utf8.RuneError {
				return pair, 12, true
			}
		}
	}
	return utf8.RuneError, 6, true
}

// hex4 reads four hexadecimal digits at i.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func (s *scanner) skipValue(depth int) bool {
	switch c := s.peek(); {
	case c == '"':
		return s.skipString()
	case c == '{':
		return depth < maxDepth && s.skipObject(depth)
	case c == '[':
		return depth < maxDepth && s.skipArray(depth)
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.skipNumber()
	}
	return false
}

func (s *scanner) skipObject(depth int) bool {
	s.i++ // '{'
	s.space()
	if s.eat('}') {
		return true
	}
	for {
		if s.peek() != '"' || !s.skipString() {
			return false
		}
		s.space()
		if !s.eat(':') {
			return false
		}
		s.space()
		if !s.skipValue(depth + 1) {
			return false
		}
		s.space()
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
		s.space()
	}
}

func (s *scanner) skipArray(depth int) bool {
	s.i++ // '['
	s.space()
	if s.eat(']') {
		return true
	}
	for {
		if !s.skipValue(depth + 1) {
			return false
		}
		s.space()
		if s.eat(']') {
			return true
		}
		if !s.eat(',') {
			return false
		}
		s.space()
	}
}

// skipString checks the string at i: no raw control byte, only the escapes
// JSON defines.
func (s *scanner) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if j+1 >= len(s.b) {
				return false
			}
			switch s.b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if _, ok := hex4(s.b, j+2); !ok {
					return false
				}
				j += 5
			default:
				return false
			}
		}
	}
	return false
}

// skipNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) skipNumber() bool {
	s.eat('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.eat('.') && !s.digits() {
		return false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits consumes [0-9]* and reports whether there was at least one.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}
