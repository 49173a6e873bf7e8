package redis

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"sync/atomic"
	"time"
)

// The signed wire format, version 1:
//
//	version (1 byte, 1) | node (8 bytes) | seq (8 bytes, big endian) |
//	time (8 bytes, Unix milliseconds, big endian) | payload | tag (16 bytes)
//
// The tag is HMAC-SHA256, truncated to 128 bits as RFC 2104 and NIST SP
// 800-107 allow, over the channel (length first) and everything before the
// tag. The version byte comes first so that a later format can be told
// apart; a node refuses a version it does not know, so every node sharing a
// key must run the same format.
const (
	wireVersion = 1
	headerLen   = 1 + 8 + 8 + 8
	tagLen      = 16
)

// header is what a signed message says about its sender, under the tag.
type header struct {
	node [8]byte // the sending broker's random id
	seq  uint64  // per node, from 1
	unix int64   // sender's clock, Unix milliseconds
}

// signer seals and opens messages. A nil *signer means no key: payloads
// travel as they are.
//
// The tag covers the channel as well as the payload, so that a captured
// message cannot be replayed into another room or another application's
// prefix; the node, sequence number and time under it let a receiver refuse
// a replay into the same room (see replayGuard).
type signer struct {
	pool sync.Pool // of hash.Hash keyed with the HMAC key
	node [8]byte
	seq  atomic.Uint64 // last sequence number used
	now  func() time.Time
}

func newSigner(key []byte, node [8]byte) *signer {
	if key == nil {
		return nil
	}
	s := &signer{node: node, now: time.Now}
	s.pool.New = func() any { return hmac.New(sha256.New, key) }
	return s
}

// seal returns a new buffer holding the signed message for payload, or a
// copy of payload without a key. The copy is needed either way: rueidis may
// write the command after Publish has returned on a timeout, and the caller
// owns payload.
func (s *signer) seal(channel string, payload []byte) []byte {
	if s == nil {
		return append([]byte(nil), payload...)
	}
	out := make([]byte, headerLen, headerLen+len(payload)+sha256.Size)
	out[0] = wireVersion
	copy(out[1:9], s.node[:])
	binary.BigEndian.PutUint64(out[9:17], s.seq.Add(1))
	binary.BigEndian.PutUint64(out[17:25], uint64(s.now().UnixMilli()))
	out = append(out, payload...)
	return s.tag(out, channel, out)[:len(out)+tagLen]
}

// open checks msg and returns its payload, in a buffer of its own that the
// handler may keep, and its header. ok is false when the version is unknown
// or the tag missing or wrong. Without a key, msg is the payload.
func (s *signer) open(channel, msg string) (payload []byte, h header, ok bool) {
	if s == nil {
		return []byte(msg), h, true
	}
	// Checked before anything is copied: unsigned junk costs nothing.
	if len(msg) < headerLen+tagLen || msg[0] != wireVersion {
		return nil, h, false
	}
	b := []byte(msg)
	body, got := b[:len(b)-tagLen], b[len(b)-tagLen:]
	var buf [sha256.Size]byte
	if want := s.tag(buf[:0], channel, body); !hmac.Equal(want[:tagLen], got) {
		return nil, h, false
	}
	copy(h.node[:], body[1:9])
	h.seq = binary.BigEndian.Uint64(body[9:17])
	h.unix = int64(binary.BigEndian.Uint64(body[17:25]))
	payload = body[headerLen:]
	return payload[:len(payload):len(payload)], h, true
}

// tag appends the full HMAC of channel and body to dst. The channel's
// length goes first so that no (channel, body) pair can be re-split into
// another with the same bytes.
func (s *signer) tag(dst []byte, channel string, body []byte) []byte {
	h := s.pool.Get().(hash.Hash)
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(channel)))])
	h.Write([]byte(channel))
	h.Write(body)
	dst = h.Sum(dst)
	s.pool.Put(h)
	return dst
}
