package protocol

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/wire"
)

// Subprotocol names of the native protocol.
const (
	NativeSubprotocol = "wsgate.v1"
)

// Limits on envelope fields; the data payload is bounded by the frame limit.
const (
	MaxEventLen = 64
	MaxRoomLen  = 128
	MaxTokenLen = 16 << 10
	// MaxEpochLen is the longest epoch a join's since may carry; the
	// stores give out shorter ones.
	MaxEpochLen = 64
	// MaxID is the largest id a JavaScript client can send exactly (2^53-1).
	MaxID = 1<<53 - 1
)

// Native is the wsgate.v1 codec.
type Native struct{}

var _ Codec = Native{}

// Subprotocol implements Codec.
func (Native) Subprotocol() string { return NativeSubprotocol }

// Decode implements Codec: wsgate.v1 carries text frames only.
func (n Native) Decode(op wire.Opcode, p []byte) (Inbound, error) {
	if op != wire.OpText {
		return Inbound{}, fmt.Errorf("%w: wsgate.v1 carries text frames only", ErrUnsupported)
	}
	return n.DecodeText(p)
}

// DecodeText decodes one envelope. The envelope is one JSON object whose keys are
// spelled exactly ("Type" is not "type") and appear at most once; unknown
// keys, trailing data, non-object frames, ids that are not integers in
// [0, MaxID] and names with characters outside the allowed sets are all
// refused. data is kept raw, after checking that it is valid JSON.
func (Native) DecodeText(frame []byte) (Inbound, error) {
	var in Inbound
	var env rawEnvelope
	if err := scanEnvelope(frame, &env); err != nil {
		return in, err
	}
	if env.id != nil {
		id, ok := parseID(env.id)
		if !ok {
			return in, invalid("id must be an integer between 0 and 2^53-1")
		}
		in.ID, in.HasID = id, true
	}
	if !isNull(env.data) {
		in.Data = env.data
	}
	switch string(env.typ) {
	case "event":
		in.Kind = KindEvent
		if !validName(env.event, MaxEventLen) {
			return in, invalid("event must be 1-64 characters of [A-Za-z0-9:._-]")
		}
		if env.room != "" {
			return in, invalid("room is not allowed on event messages")
		}
		in.Event = env.event
	case "join", "leave":
		in.Kind = KindJoin
		if string(env.typ) == "leave" {
			in.Kind = KindLeave
		}
		if env.room == "" || len(env.room) > MaxRoomLen || !utf8.ValidString(env.room) {
			return in, invalid("room must be 1-128 bytes")
		}
		if env.event != "" || (in.Data != nil && in.Kind == KindLeave) {
			return in, invalid("leave carries only a room")
		}
		if in.Data != nil {
			since, ok := scanJoinData(in.Data)
			if !ok {
				return in, invalid(`join data must be {"since":{"offset":N,"epoch":"E"}}`)
			}
			in.Since = &since
		}
		in.Room = env.room
	case "auth":
		in.Kind = KindAuth
		token, ok := scanAuthData(in.Data)
		if !ok || token == "" {
			return in, invalid("auth needs data.token")
		}
		if len(token) > MaxTokenLen {
			return in, invalid("token too long")
		}
		in.Token = token
	case "":
		return in, invalid("type is required")
	default:
		return in, invalid("unknown type")
	}
	return in, nil
}

// parseID reads a JSON number that must be an integer in [0, MaxID]: the
// scanner has checked the grammar, so digits only means no sign, fraction
// or exponent, and no leading zero.
func parseID(raw []byte) (uint64, bool) {
	if len(raw) == 0 || len(raw) > 16 {
		return 0, false
	}
	var id uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + uint64(c-'0')
	}
	return id, id <= MaxID
}

func isNull(raw []byte) bool {
	return raw == nil || string(raw) == "null"
}

// validName reports whether s is 1..max bytes of [A-Za-z0-9:._-].
func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':' || c == '.' || c == '_' || c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidEventName reports whether s can name an event on the wire.
func ValidEventName(s string) bool { return validName(s, MaxEventLen) }

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalid, reason)
}

// Encode implements Codec: one text frame. Binary attachments have no
// place in wsgate.v1 and are left out.
func (n Native) Encode(dst []wire.Frame, m *Message) []wire.Frame {
	var p []byte
	switch m.Kind {
	case MsgEvent:
		p = n.AppendEventAt(make([]byte, 0, 48+len(m.Event)+len(m.Room)+len(m.Data)), m.Event, m.Room, m.Pos, m.Data)
	case MsgAck:
		p = n.AppendAck(make([]byte, 0, 32+len(m.Data)), m.ID, m.Data)
	case MsgError:
		p = n.AppendError(nil, m.ID, m.HasID, m.Code, m.Text)
	case MsgWelcome:
		p = n.AppendWelcome(nil, m.Welcome)
	case MsgBye:
		p = n.AppendBye(nil, m.Text)
	default:
		return dst
	}
	return append(dst, wire.Frame{Op: wire.OpText, Payload: p})
}

// AppendEvent appends an event frame without a stream position.
func (n Native) AppendEvent(dst []byte, event, room string, data []byte) []byte {
	return n.AppendEventAt(dst, event, room, Position{}, data)
}

// AppendEventAt appends an event frame; a room with history adds the
// message's offset and epoch.
func (Native) AppendEventAt(dst []byte, event, room string, pos Position, data []byte) []byte {
	dst = append(dst, `{"type":"event","event":`...)
	dst = appendString(dst, event)
	if room != "" {
		dst = append(dst, `,"room":`...)
		dst = appendString(dst, room)
	}
	if !pos.IsZero() {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, pos.Offset, 10)
		dst = append(dst, `,"epoch":`...)
		dst = appendString(dst, pos.Epoch)
	}
	dst = appendData(dst, data)
	return append(dst, '}')
}

// AppendAck appends an ack frame.
func (Native) AppendAck(dst []byte, id uint64, data []byte) []byte {
	dst = append(dst, `{"type":"ack","id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = appendData(dst, data)
	return append(dst, '}')
}

// AppendError appends an error frame.
func (Native) AppendError(dst []byte, id uint64, hasID bool, code, message string) []byte {
	dst = append(dst, `{"type":"error"`...)
	if hasID {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, id, 10)
	}
	dst = append(dst, `,"code":`...)
	dst = appendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, message)
	return append(dst, '}')
}

// AppendWelcome appends the welcome frame.
func (Native) AppendWelcome(dst []byte, w Welcome) []byte {
	dst = append(dst, `{"type":"welcome","data":{"connectionId":`...)
	dst = appendString(dst, w.ConnID)
	dst = append(dst, `,"userId":`...)
	dst = appendString(dst, w.UserID)
	dst = append(dst, `,"expiresAt":`...)
	dst = strconv.AppendInt(dst, w.ExpiresAt, 10)
	dst = append(dst, `,"heartbeatMs":`...)
	dst = strconv.AppendInt(dst, w.HeartbeatMS, 10)
	if len(w.Positions) > 0 {
		dst = append(dst, `,"positions":{`...)
		for i, rp := range w.Positions {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, rp.Room)
			dst = append(dst, `:{"offset":`...)
			dst = strconv.AppendUint(dst, rp.Position.Offset, 10)
			dst = append(dst, `,"epoch":`...)
			dst = appendString(dst, rp.Position.Epoch)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	return append(dst, "}}"...)
}

// AppendBye appends a bye frame.
func (Native) AppendBye(dst []byte, reason string) []byte {
	dst = append(dst, `{"type":"bye","data":{"reason":`...)
	dst = appendString(dst, reason)
	return append(dst, "}}"...)
}

func appendData(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = append(dst, `,"data":`...)
	return append(dst, data...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD and
// <, >, & are escaped like encoding/json does, so frames are safe to embed.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
