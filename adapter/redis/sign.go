package redis

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
)

// tagLen is the length of the truncated HMAC-SHA256 tag appended to signed
// payloads: 128 bits, as RFC 2104 and NIST SP 800-107 allow for truncation.
const tagLen = 16

// signer appends and checks message tags. A nil *signer means no key: the
// payload travels as is.
//
// The tag covers the channel as well as the payload, so that a captured
// message cannot be replayed into another room or another application's
// prefix. It does not stop a replay into the same room; that needs state
// per sender, which at-most-once delivery does not justify.
type signer struct {
	pool sync.Pool // of hash.Hash keyed with the HMAC key
}

func newSigner(key []byte) *signer {
	if key == nil {
		return nil
	}
	s := &signer{}
	s.pool.New = func() any { return hmac.New(sha256.New, key) }
	return s
}

// seal returns a new buffer holding payload and, with a key, its tag. The
// copy is needed either way: rueidis may write the command after Publish
// has returned on a timeout, and the caller owns payload.
func (s *signer) seal(channel string, payload []byte) []byte {
	if s == nil {
		return append([]byte(nil), payload...)
	}
	out := make([]byte, len(payload), len(payload)+sha256.Size)
	copy(out, payload)
	return s.tag(out, channel, payload)[:len(payload)+tagLen]
}

// open returns the payload of msg in a buffer of its own, which the
// handler may keep, or false when its tag is missing or wrong.
func (s *signer) open(channel, msg string) ([]byte, bool) {
	if s == nil {
		return []byte(msg), true
	}
	if len(msg) < tagLen {
		return nil, false
	}
	b := []byte(msg)
	payload, got := b[:len(b)-tagLen], b[len(b)-tagLen:]
	var buf [sha256.Size]byte
	want := s.tag(buf[:0], channel, payload)
	return payload[:len(payload):len(payload)], hmac.Equal(want[:tagLen], got)
}

// tag appends the full HMAC of channel and payload to dst. The channel's
// length goes first so that no (channel, payload) pair can be re-split
// into another with the same bytes.
func (s *signer) tag(dst []byte, channel string, payload []byte) []byte {
	h := s.pool.Get().(hash.Hash)
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(channel)))])
	h.Write([]byte(channel))
	h.Write(payload)
	dst = h.Sum(dst)
	s.pool.Put(h)
	return dst
}
