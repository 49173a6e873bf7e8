package eio

import (
	"bytes"
	"fmt"
)

// Separator is the record separator between the packets of a long-polling
// payload.
const Separator = 0x1e

// DecodePayload decodes a long-polling request body and appends its packets
// to dst, which it returns (pass a reused slice to decode without
// allocating). The payload is decoded in full before anything is returned:
// on error no packet is, so a bad payload changes nothing. An empty body, an
// empty packet (two separators in a row, a trailing separator), an unknown
// type, bad base64, invalid UTF-8 or a body over the limits are errors.
func DecodePayload(dst []Packet, body []byte, lim Limits) ([]Packet, error) {
	if len(body) > lim.maxPayload() {
		return dst, fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, len(body), lim.maxPayload())
	}
	maxPackets := lim.maxPackets()
	// Counting first bounds the work and the slice growth before any decoding.
	if n := bytes.Count(body, []byte{Separator}) + 1; n > maxPackets {
		return dst, fmt.Errorf("%w: %d packets in one payload, limit %d", ErrTooLarge, n, maxPackets)
	}
	start := len(dst)
	for rest := body; ; {
		end := bytes.IndexByte(rest, Separator)
		last := end < 0
		if last {
			end = len(rest)
		}
		p, err := decodeText(rest[:end])
		if err != nil {
			clear(dst[start:])
			return dst[:start], fmt.Errorf("packet %d: %w", len(dst)-start, err)
		}
		dst = append(dst, p)
		if last {
			return dst, nil
		}
		rest = rest[end+1:]
	}
}

// AppendPayload appends a long-polling payload holding packets: each in its
// text form, binary messages as "b"+base64, separated by Separator.
func AppendPayload(dst []byte, packets ...Packet) []byte {
	for i, p := range packets {
		if i > 0 {
			dst = append(dst, Separator)
		}
		if p.Binary {
			dst = appendBase64Packet(dst, p.Data)
			continue
		}
		dst = append(dst, '0'+byte(p.Type))
		dst = append(dst, p.Data...)
	}
	return dst
}

// PayloadLen returns the length of p in a long-polling payload, without the
// separator, so that a writer can bound a response before encoding it.
func PayloadLen(p Packet) int {
	if p.Binary {
		return 1 + (len(p.Data)+2)/3*4
	}
	return 1 + len(p.Data)
}
