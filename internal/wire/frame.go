package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Opcode is a frame's type (RFC 6455 section 5.2).
type Opcode uint8

// The opcodes RFC 6455 defines.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xa
)

// String returns the opcode's name as RFC 6455 spells it.
func (op Opcode) String() string {
	switch op {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return fmt.Sprintf("opcode(%#x)", uint8(op))
}

// IsControl reports whether op is a control frame's opcode.
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

// Header bits of the first two bytes of a frame.
const (
	finBit  = 0x80
	rsv1Bit = 0x40
	rsv2Bit = 0x20
	rsv3Bit = 0x10
	opMask  = 0x0f
	maskBit = 0x80
)

// MaxControlPayload is the largest payload of a control frame.
const MaxControlPayload = 125

// maxHeader is the longest server frame header: 2 bytes, 8 of length, no mask.
const maxHeader = 10

// Frame is one outbound frame: a whole message, never fragmented. Payload is
// shared by every connection the frame is queued for and must not change
// once queued. Deflated says that Payload is already compressed with
// permessage-deflate (the RSV1 bit is set); only connections that
// negotiated compression may be sent such a frame.
type Frame struct {
	Op       Opcode
	Deflated bool
	Payload  []byte
}

// appendHeader appends the header of an unmasked, final frame carrying n
// bytes.
func appendHeader(b []byte, op Opcode, deflated bool, n int) []byte {
	b0 := finBit | byte(op)
	if deflated {
		b0 |= rsv1Bit
	}
	switch {
	case n < 126:
		return append(b, b0, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, b0, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, b0, 127), uint64(n))
	}
}

// StatusCode is a close frame's status code (RFC 6455 section 7.4).
type StatusCode uint16

// Status codes wire itself uses or interprets.
const (
	StatusNormalClosure   StatusCode = 1000
	StatusGoingAway       StatusCode = 1001
	StatusProtocolError   StatusCode = 1002
	StatusUnsupportedData StatusCode = 1003
	// StatusNoStatusRcvd is reported for a close frame without a payload;
	// it is never sent.
	StatusNoStatusRcvd         StatusCode = 1005
	StatusInvalidPayload       StatusCode = 1007
	StatusPolicyViolation      StatusCode = 1008
	StatusMessageTooBig        StatusCode = 1009
	StatusInternalError        StatusCode = 1011
	StatusServiceRestart       StatusCode = 1012
	StatusTryAgainLater        StatusCode = 1013
	statusMaxRegistered        StatusCode = 1014
	statusFirstApplicationCode StatusCode = 3000
	statusLastApplicationCode  StatusCode = 4999
)

// validReceived reports whether a peer may send code in a close frame:
// the codes RFC 6455 and the IANA registry define for use on the wire
// (not 1004-1006, 1015, which are reserved or never sent), and 3000-4999.
func (c StatusCode) validReceived() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= statusMaxRegistered:
		return true
	case c >= statusFirstApplicationCode && c <= statusLastApplicationCode:
		return true
	}
	return false
}

// CloseError is a protocol violation found by the reader or a close frame
// the peer sent. Code is the status code to close with (or the peer's);
// Reason is a short text, safe to send back: it never contains peer data.
type CloseError struct {
	Code   StatusCode
	Reason string
	// Peer is true when the peer sent a close frame with this code.
	Peer bool
}

func (e *CloseError) Error() string {
	if e.Peer {
		return fmt.Sprintf("wire: peer closed with %d", e.Code)
	}
	return fmt.Sprintf("wire: %s (close %d)", e.Reason, e.Code)
}

func violation(code StatusCode, reason string) error {
	return &CloseError{Code: code, Reason: reason}
}

// parseClose reads a close frame's payload. The reason is checked but not
// kept: a server never needs the peer's words, and must never echo them.
func parseClose(p []byte) (StatusCode, error) {
	switch {
	case len(p) == 0:
		return StatusNoStatusRcvd, nil
	case len(p) == 1:
		return 0, violation(StatusProtocolError, "close payload of one byte")
	}
	code := StatusCode(binary.BigEndian.Uint16(p))
	if !code.validReceived() {
		return 0, violation(StatusProtocolError, "invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return 0, violation(StatusInvalidPayload, "close reason is not UTF-8")
	}
	return code, nil
}

// AppendClosePayload appends a close frame's payload: code, then reason
// cut to fit a control frame at a rune boundary.
func AppendClosePayload(b []byte, code StatusCode, reason string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return append(b, reason...)
}

// ErrClosed is returned for frames queued after the close frame was sent or
// the connection failed.
var ErrClosed = errors.New("wire: connection closed")
