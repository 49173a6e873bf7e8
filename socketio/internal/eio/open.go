package eio

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Handshake is the payload of the open packet, the first packet of a
// session.
type Handshake struct {
	// SID is the session id the client sends back in every later request.
	SID string
	// Upgrades lists the transports the client may upgrade to: "websocket"
	// for a long-polling session, none for a WebSocket session.
	Upgrades []string
	// PingInterval is how often the server pings; PingTimeout how long it
	// waits for the pong. Both travel as whole milliseconds.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// MaxPayload is the largest frame or long-polling body the server
	// accepts, in bytes; the client packs its payloads below it.
	MaxPayload int
}

// AppendOpen appends the open packet ("0" and the handshake JSON, keys in
// the reference server's order) in its text form.
func AppendOpen(dst []byte, h Handshake) []byte {
	dst = append(dst, '0')
	dst = append(dst, `{"sid":`...)
	dst = appendJSONString(dst, h.SID)
	dst = append(dst, `,"upgrades":[`...)
	for i, u := range h.Upgrades {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, u)
	}
	dst = append(dst, `],"pingInterval":`...)
	dst = strconv.AppendInt(dst, h.PingInterval.Milliseconds(), 10)
	dst = append(dst, `,"pingTimeout":`...)
	dst = strconv.AppendInt(dst, h.PingTimeout.Milliseconds(), 10)
	dst = append(dst, `,"maxPayload":`...)
	dst = strconv.AppendInt(dst, int64(h.MaxPayload), 10)
	return append(dst, '}')
}

// appendJSONString quotes s as a JSON string. The values written here (ids,
// transport names) are ASCII, so encoding/json's rules and JavaScript's
// agree on them.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

type handshakeJSON struct {
	SID          *string  `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval *int64   `json:"pingInterval"`
	PingTimeout  *int64   `json:"pingTimeout"`
	MaxPayload   *int     `json:"maxPayload"`
}

// ParseOpen parses the payload of an open packet (after the "0"), as a
// client does. Every field is required; errors wrap ErrInvalid.
func ParseOpen(data []byte) (Handshake, error) {
	var j handshakeJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Handshake{}, invalid("open packet: %v", err)
	}
	if dec.More() {
		return Handshake{}, invalid("open packet: trailing data")
	}
	if j.SID == nil || *j.SID == "" || j.Upgrades == nil || j.PingInterval == nil ||
		j.PingTimeout == nil || j.MaxPayload == nil {
		return Handshake{}, invalid("open packet: missing field")
	}
	if *j.PingInterval <= 0 || *j.PingTimeout <= 0 || *j.MaxPayload <= 0 {
		return Handshake{}, invalid("open packet: non-positive timing or size")
	}
	return Handshake{
		SID:          *j.SID,
		Upgrades:     j.Upgrades,
		PingInterval: time.Duration(*j.PingInterval) * time.Millisecond,
		PingTimeout:  time.Duration(*j.PingTimeout) * time.Millisecond,
		MaxPayload:   *j.MaxPayload,
	}, nil
}

// sidBytes is the entropy of a session id: the sid is a bearer credential
// (whoever presents it reads and writes the session), so it carries more than
// 128 random bits. 18 bytes encode to 24 base64url characters, no padding.
const sidBytes = 18

// SIDLen is the length of the ids NewSID returns.
const SIDLen = sidBytes / 3 * 4

// NewSID returns a new session id: 144 bits from crypto/rand in base64url.
func NewSID() string {
	var b [sidBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidSID reports whether s has the shape of an id from NewSID, so that a
// server can refuse a malformed sid before looking it up.
func ValidSID(s string) bool {
	if len(s) != SIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// String returns a description of h without the sid, which is a credential
// and must not reach logs.
func (h Handshake) String() string {
	return fmt.Sprintf("eio.Handshake{upgrades:%v pingInterval:%s pingTimeout:%s maxPayload:%d}",
		h.Upgrades, h.PingInterval, h.PingTimeout, h.MaxPayload)
}
