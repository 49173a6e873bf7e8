package eio

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzPayload feeds arbitrary long-polling bodies to DecodePayload. It checks
// that decoding never panics, that a refusal wraps ErrInvalid and returns no
// packet, that what is accepted stays within the limits and no larger than
// the body, and that an accepted payload re-encodes to a payload that
// decodes to the same packets.
func FuzzPayload(f *testing.F) {
	for _, seed := range []string{
		"4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA==", "bAQIDBA", "3\x1e1",
		"abc", "", "\x1e", "4a\x1e\x1e4b", "2probe", "6\x1e6\x1e6\x1e6\x1e6", "b!!", "4\xff",
		`40{"token":"123"}` + "\x1e" + `42["message",1]`, "451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
	} {
		f.Add([]byte(seed))
	}
	lim := Limits{MaxPayload: 1 << 12, MaxPackets: 16}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		packets, err := DecodePayload(nil, body, lim)
		if !bytes.Equal(body, orig) {
			t.Fatal("DecodePayload modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if len(packets) != 0 {
				t.Fatalf("refused payload returned %d packets", len(packets))
			}
			return
		}
		if len(packets) == 0 || len(packets) > lim.MaxPackets {
			t.Fatalf("accepted %d packets, limit %d", len(packets), lim.MaxPackets)
		}
		size := 0
		for _, p := range packets {
			if p.Type > maxType || (p.Binary && p.Type != Message) {
				t.Fatalf("accepted an impossible packet %+v", p)
			}
			size += len(p.Data)
		}
		if size > len(body) {
			t.Fatalf("decoded %d bytes of data from a %d-byte body", size, len(body))
		}
		again, err := DecodePayload(nil, AppendPayload(nil, packets...), Limits{MaxPackets: lim.MaxPackets})
		if err != nil {
			t.Fatalf("re-encoded payload refused: %v", err)
		}
		if len(again) != len(packets) {
			t.Fatalf("round trip: %d packets, want %d", len(again), len(packets))
		}
		for i := range again {
			if !samePacket(again[i], packets[i]) {
				t.Fatalf("round trip: packet %d = %+v, want %+v", i, again[i], packets[i])
			}
		}
	})
}
