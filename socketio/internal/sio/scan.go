package sio

import (
	"bytes"
	"encoding/json"
)

// scanner validates one JSON value (RFC 8259, as strict as encoding/json) in
// a single pass without allocating, and finds the placeholders of a binary
// packet on the way. JSON.parse and encoding/json accept the same texts; the
// scanner refuses nesting deeper than maxDepth in addition.
type scanner struct {
	data     []byte
	maxDepth int
	// attachments is the count the packet declared; 0 means placeholders are
	// not allowed (not a binary packet).
	attachments int
	used        uint64 // bit n: placeholder num n seen (attachments <= 64)
	found       []placeholder
	err         error
}

// errorAt records the first error and returns an offset past the end, so
// that callers unwind without checking at every step.
func (s *scanner) errorAt(i int, what string) int {
	if s.err == nil {
		s.err = invalid("%s at offset %d", what, i)
	}
	return len(s.data) + 1
}

func (s *scanner) failed(i int) bool { return i > len(s.data) }

func (s *scanner) skipSpace(i int) int {
	for i < len(s.data) {
		switch s.data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value scans the value starting at i (no leading space) and returns the
// offset just past it.
func (s *scanner) value(i, depth int) int {
	if i >= len(s.data) {
		return s.errorAt(i, "unexpected end of JSON")
	}
	switch c := s.data[i]; {
	case c == '{':
		return s.object(i, depth+1)
	case c == '[':
		return s.array(i, depth+1)
	case c == '"':
		end, _ := s.str(i)
		return end
	case c == '-' || '0' <= c && c <= '9':
		return s.number(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	}
	return s.errorAt(i, "unexpected character")
}

func (s *scanner) literal(i int, lit string) int {
	if !bytes.HasPrefix(s.data[i:], []byte(lit)) {
		return s.errorAt(i, "bad literal")
	}
	return i + len(lit)
}

// str scans the string starting at the quote at i and reports whether it
// holds escapes.
func (s *scanner) str(i int) (end int, escaped bool) {
	for i++; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			return i + 1, escaped
		case c < 0x20:
			return s.errorAt(i, "control character in string"), false
		case c == '\\':
			escaped = true
			i++
			if i >= len(s.data) {
				return s.errorAt(i, "unterminated escape"), false
			}
			switch s.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.data) || !isHex(s.data[i+1]) || !isHex(s.data[i+2]) ||
					!isHex(s.data[i+3]) || !isHex(s.data[i+4]) {
					return s.errorAt(i, "bad \\u escape"), false
				}
				i += 4
			default:
				return s.errorAt(i, "bad escape"), false
			}
		}
	}
	return s.errorAt(i, "unterminated string"), false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number(i int) int {
	d := s.data
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	default:
		return s.errorAt(i, "bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return s.errorAt(i, "bad fraction")
		}
		for ; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return s.errorAt(i, "bad exponent")
		}
		for ; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	return i
}

// array scans the array at i.
func (s *scanner) array(i, depth int) int {
	end, _ := s.elements(i, depth, nil)
	return end
}

// elements scans the array at i and appends the [start, end) span of each
// element to spans.
func (s *scanner) elements(i, depth int, spans [][2]int) (int, [][2]int) {
	if depth > s.maxDepth {
		return s.errorAt(i, "nesting too deep"), spans
	}
	i = s.skipSpace(i + 1)
	if i < len(s.data) && s.data[i] == ']' {
		return i + 1, spans
	}
	for {
		start := i
		i = s.value(i, depth)
		if s.failed(i) {
			return i, spans
		}
		if spans != nil {
			spans = append(spans, [2]int{start, i})
		}
		i = s.skipSpace(i)
		if i >= len(s.data) {
			return s.errorAt(i, "unterminated array"), spans
		}
		switch s.data[i] {
		case ',':
			i = s.skipSpace(i + 1)
		case ']':
			return i + 1, spans
		default:
			return s.errorAt(i, "expected , or ] in array"), spans
		}
	}
}

// objectKeys is what an object's keys say about it being a placeholder.
type objectKeys struct {
	placeholder, num, other int
	isTrue                  bool // the _placeholder member is the literal true
	numValue                int  // the num member, -1 unless a small non-negative integer
}

// object scans the object at i. An object with a "_placeholder" key must be
// a placeholder exactly as the reference encoder writes it, in a binary
// packet; any other use of the key is refused, so that no object can be
// read as a placeholder by one side and as data by the other.
func (s *scanner) object(i, depth int) int {
	if depth > s.maxDepth {
		return s.errorAt(i, "nesting too deep")
	}
	start := i
	var k objectKeys
	i = s.skipSpace(i + 1)
	if i < len(s.data) && s.data[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(s.data) || s.data[i] != '"' {
			return s.errorAt(i, "expected string key in object")
		}
		keyStart := i
		keyEnd, escaped := s.str(i)
		if s.failed(keyEnd) {
			return keyEnd
		}
		i = s.skipSpace(keyEnd)
		if i >= len(s.data) || s.data[i] != ':' {
			return s.errorAt(i, "expected : in object")
		}
		i = s.skipSpace(i + 1)
		valStart := i
		i = s.value(i, depth)
		if s.failed(i) {
			return i
		}
		k.note(keyName(s.data[keyStart:keyEnd], escaped), s.data[valStart:i])
		i = s.skipSpace(i)
		if i >= len(s.data) {
			return s.errorAt(i, "unterminated object")
		}
		switch s.data[i] {
		case ',':
			i = s.skipSpace(i + 1)
		case '}':
			i++
			if k.placeholder > 0 {
				return s.placeholderAt(start, i, k)
			}
			return i
		default:
			return s.errorAt(i, "expected , or } in object")
		}
	}
}

// keyName returns the key's text: the raw bytes between the quotes, or the
// unescaped string when it holds escapes (so "\u005fplaceholder" is seen
// for what it is).
func keyName(quoted []byte, escaped bool) []byte {
	if !escaped {
		return quoted[1 : len(quoted)-1]
	}
	var k string
	if json.Unmarshal(quoted, &k) != nil {
		return nil
	}
	return []byte(k)
}

func (k *objectKeys) note(key, val []byte) {
	switch string(key) {
	case "_placeholder":
		k.placeholder++
		k.isTrue = string(val) == "true"
	case "num":
		k.num++
		k.numValue = smallInt(val)
	default:
		k.other++
	}
}

// smallInt parses a non-negative integer literal of at most two digits
// (placeholder numbers stay below 64), or returns -1.
func smallInt(b []byte) int {
	switch {
	case len(b) == 1 && isDigit(b[0]):
		return int(b[0] - '0')
	case len(b) == 2 && '1' <= b[0] && b[0] <= '9' && isDigit(b[1]):
		return int(b[0]-'0')*10 + int(b[1]-'0')
	}
	return -1
}

// placeholderAt checks the placeholder object [start, end) and records it.
func (s *scanner) placeholderAt(start, end int, k objectKeys) int {
	switch {
	case s.attachments == 0:
		return s.errorAt(start, "placeholder outside a binary packet")
	case k.placeholder != 1 || !k.isTrue || k.num != 1 || k.other != 0:
		return s.errorAt(start, `placeholder must be exactly {"_placeholder":true,"num":N}`)
	case k.numValue < 0 || k.numValue >= s.attachments:
		return s.errorAt(start, "placeholder num out of range")
	case s.used&(1<<k.numValue) != 0:
		return s.errorAt(start, "placeholder num used twice")
	}
	s.used |= 1 << k.numValue
	s.found = append(s.found, placeholder{start: start, end: end, num: k.numValue})
	return end
}
