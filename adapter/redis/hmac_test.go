package redis

import (
	"bytes"
	"context"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
)

func TestHMAC(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv.Addr())
	key := []byte("0123456789abcdef0123456789abcdef")
	keyed := Options{Addrs: []string{srv.Addr()}, HMACKey: key}

	// inject publishes behind the broker's back, as anyone with write
	// access to Redis could.
	inject := func(t *testing.T, channel string, msg []byte) {
		t.Helper()
		if err := rc.Do(context.Background(), rc.B().Publish().Channel(channel).Message(string(msg)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	// sealed is a message as a node publishes it without a stream.
	sealed := func(k []byte, channel string, payload []byte) []byte {
		return append([]byte{markPlain}, newSigner(k).seal(channel, payload)...)
	}

	tests := []struct {
		name      string
		receiver  Options
		inject    func(t *testing.T, sender *Broker)
		delivered bool
	}{
		{"signed_message_from_a_node_with_the_key_is_delivered", keyed, func(t *testing.T, sender *Broker) {
			publish(t, sender, "room:a", []byte("hi"))
		}, true},
		{"correctly_sealed_injection_is_delivered", keyed, func(t *testing.T, _ *Broker) {
			inject(t, "wsgate:room:a", sealed(key, "wsgate:room:a", []byte("hi")))
		}, true},
		{"unsigned_injection_is_rejected", keyed, func(t *testing.T, _ *Broker) {
			inject(t, "wsgate:room:a", []byte(`{"type":"event","event":"pwned"}`))
		}, false},
		{"message_shorter_than_a_tag_is_rejected", keyed, func(t *testing.T, _ *Broker) {
			inject(t, "wsgate:room:a", []byte("x"))
		}, false},
		{"tag_made_for_another_room_is_rejected", keyed, func(t *testing.T, _ *Broker) {
			inject(t, "wsgate:room:a", sealed(key, "wsgate:room:b", []byte("hi")))
		}, false},
		{"flipped_payload_bit_is_rejected", keyed, func(t *testing.T, _ *Broker) {
			msg := sealed(key, "wsgate:room:a", []byte("hi"))
			msg[1] ^= 1 // the payload's first byte, after the header
			inject(t, "wsgate:room:a", msg)
		}, false},
		{"node_with_a_different_key_rejects", Options{Addrs: keyed.Addrs, HMACKey: []byte("another key, also 32 bytes long.")}, func(t *testing.T, sender *Broker) {
			publish(t, sender, "room:a", []byte("hi"))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sender, _ := node(t, keyed)
			receiver, s := node(t, tt.receiver)
			subscribe(t, receiver, "room:a", "room:end")
			tt.inject(t, sender)
			// The marker comes from a node with the receiver's key, so it
			// is delivered whatever happened to the message before it.
			marker, _ := node(t, Options{Addrs: keyed.Addrs, HMACKey: tt.receiver.HMACKey})
			publish(t, marker, "room:end", nil)
			other := s.waitTopic(t, "room:end")
			got := len(other) == 1 && other[0].topic == "room:a" && bytes.Equal(other[0].payload, []byte("hi"))
			if got != tt.delivered || (!tt.delivered && len(other) > 0) {
				t.Fatalf("delivered %v, want delivered=%v", other, tt.delivered)
			}
			wantRejected := uint64(1)
			if tt.delivered {
				wantRejected = 0
			}
			if st := receiver.Stats(); st.Rejected != wantRejected {
				t.Fatalf("Rejected = %d, want %d", st.Rejected, wantRejected)
			}
		})
	}
}

func TestSigner(t *testing.T) {
	s := newSigner([]byte("0123456789abcdef"))
	payload := []byte("payload")
	msg := s.seal("ch", payload)
	if len(msg) != len(payload)+tagLen {
		t.Fatalf("sealed length %d", len(msg))
	}
	payload[0] = 'X' // the sealed copy must not follow the caller's buffer
	got, ok := s.open("ch", string(msg))
	if !ok || string(got) != "payload" {
		t.Fatalf("open = %q, %v", got, ok)
	}
	// Re-splitting channel and payload must not keep the tag valid.
	if _, ok := s.open("c", "h"+string(msg)); ok {
		t.Fatal("tag accepted for a shifted channel/payload split")
	}
	var none *signer
	if got := none.seal("ch", []byte("raw")); string(got) != "raw" {
		t.Fatalf("unsigned seal = %q", got)
	}
}
