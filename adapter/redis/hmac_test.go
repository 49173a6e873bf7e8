package redis

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/brokertest"
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
		return append([]byte{markPlain}, newSigner(k, [8]byte{'i', 'n', 'j'}).seal(channel, payload)...)
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
		{"unknown_format_version_is_rejected", keyed, func(t *testing.T, _ *Broker) {
			msg := sealed(key, "wsgate:room:a", []byte("hi"))
			msg[1] = wireVersion + 1 // after the mark byte
			inject(t, "wsgate:room:a", msg)
		}, false},
		{"message_signed_in_the_former_format_is_rejected", keyed, func(t *testing.T, _ *Broker) {
			// payload || tag, without the header: what nodes signed before
			// the format had a version.
			body := []byte("hi there, this is long enough")
			inject(t, "wsgate:room:a", append([]byte{markPlain}, newSigner(key, [8]byte{}).tag(body, "wsgate:room:a", body)[:len(body)+tagLen]...))
		}, false},
		{"tampered_sequence_number_is_rejected", keyed, func(t *testing.T, _ *Broker) {
			msg := sealed(key, "wsgate:room:a", []byte("hi"))
			msg[1+16] ^= 1 // a byte of the sequence number, after the mark byte
			inject(t, "wsgate:room:a", msg)
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
	s := newSigner([]byte("0123456789abcdef"), [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	at := time.UnixMilli(1_900_000_000_123)
	s.now = func() time.Time { return at }
	payload := []byte("payload")
	msg := s.seal("ch", payload)
	if len(msg) != headerLen+len(payload)+tagLen || msg[0] != wireVersion {
		t.Fatalf("sealed %d bytes, version %d", len(msg), msg[0])
	}
	payload[0] = 'X' // the sealed copy must not follow the caller's buffer
	got, h, ok := s.open("ch", string(msg))
	if !ok || string(got) != "payload" {
		t.Fatalf("open = %q, %v", got, ok)
	}
	if h.node != s.node || h.seq != 1 || h.unix != at.UnixMilli() {
		t.Fatalf("header = %+v", h)
	}
	if _, h2, _ := s.open("ch", string(s.seal("ch", nil))); h2.seq != 2 {
		t.Fatalf("second message has seq %d, want 2", h2.seq)
	}
	// Re-splitting channel and message must not keep the tag valid.
	if _, _, ok := s.open("c", "h"+string(msg)); ok {
		t.Fatal("tag accepted for a shifted channel/message split")
	}
	var none *signer
	if got := none.seal("ch", []byte("raw")); string(got) != "raw" {
		t.Fatalf("unsigned seal = %q", got)
	}
}

// TestReplay captures a signed message with a raw SUBSCRIBE, as an attacker
// with read and write access to Redis would, and publishes it again.
func TestReplay(t *testing.T) {
	srv := redistest.Start(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	opts := Options{Addrs: []string{srv.Addr()}, HMACKey: key}
	raw := rawClient(t, srv.Addr())
	inject := func(t *testing.T, channel string, msg string) {
		t.Helper()
		if err := raw.Do(context.Background(), raw.B().Publish().Channel(channel).Message(msg).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	// expectOnly waits for the marker and checks what came before it.
	expectOnly := func(t *testing.T, s *sink, want ...string) {
		t.Helper()
		var got []string
		for _, m := range s.waitTopic(t, "room:end") {
			got = append(got, string(m.payload))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("delivered %q, want %q", got, want)
		}
	}

	t.Run("captured_message_published_again_three_times_is_delivered_once", func(t *testing.T) {
		sender, _ := node(t, opts)
		receiver, s := node(t, opts)
		subscribe(t, receiver, "room:a", "room:end")
		captured := capture(t, srv.Addr(), "wsgate:room:a", func() { publish(t, sender, "room:a", []byte("transfer 100")) })
		for range 3 {
			inject(t, "wsgate:room:a", captured)
		}
		publish(t, sender, "room:end", nil)
		expectOnly(t, s, "transfer 100")
		if st := receiver.Stats(); st.Replayed != 3 || st.Rejected != 0 || st.Stale != 0 {
			t.Fatalf("stats %+v, want 3 replayed", st)
		}
	})
	t.Run("replay_is_refused_by_every_node_that_saw_the_original", func(t *testing.T) {
		sender, _ := node(t, opts)
		a, sa := node(t, opts)
		b, sb := node(t, opts)
		subscribe(t, a, "room:b", "room:end")
		subscribe(t, b, "room:b", "room:end")
		captured := capture(t, srv.Addr(), "wsgate:room:b", func() { publish(t, sender, "room:b", []byte("once")) })
		inject(t, "wsgate:room:b", captured)
		publish(t, sender, "room:end", nil)
		expectOnly(t, sa, "once")
		expectOnly(t, sb, "once")
		if a.Stats().Replayed != 1 || b.Stats().Replayed != 1 {
			t.Fatalf("replayed %d and %d, want 1 each", a.Stats().Replayed, b.Stats().Replayed)
		}
	})
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"message_from_two_minutes_ago_is_stale", -2 * time.Minute},
		{"message_from_two_minutes_ahead_is_stale", 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender, _ := node(t, opts)
			receiver, s := node(t, opts)
			subscribe(t, receiver, "room:c", "room:end")
			old := newSigner(key, [8]byte{'o', 'l', 'd'})
			old.now = func() time.Time { return time.Now().Add(tc.skew) }
			inject(t, "wsgate:room:c", plain(old.seal("wsgate:room:c", []byte("late"))))
			publish(t, sender, "room:end", nil)
			expectOnly(t, s)
			if st := receiver.Stats(); st.Stale != 1 || st.Replayed != 0 {
				t.Fatalf("stats %+v, want 1 stale", st)
			}
		})
	}
	t.Run("skew_within_the_window_is_tolerated", func(t *testing.T) {
		sender, _ := node(t, opts)
		receiver, s := node(t, opts)
		subscribe(t, receiver, "room:d", "room:end")
		ahead := newSigner(key, [8]byte{'a', 'h', 'e', 'a', 'd'})
		ahead.now = func() time.Time { return time.Now().Add(30 * time.Second) }
		inject(t, "wsgate:room:d", plain(ahead.seal("wsgate:room:d", []byte("skewed"))))
		publish(t, sender, "room:end", nil)
		expectOnly(t, s, "skewed")
	})
	t.Run("history_returns_what_was_delivered_live", func(t *testing.T) {
		// Stored messages are old and were delivered before, by design:
		// replay protection is for live delivery only.
		sender, _ := node(t, opts)
		receiver, s := node(t, opts)
		subscribe(t, receiver, "room:hist", "room:end")
		first, err := sender.Publish(context.Background(), "room:hist", []byte("kept"), adapter.PublishOptions{Stream: brokertest.Stream})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, sender, "room:end", nil)
		expectOnly(t, s, "kept")
		since := adapter.Position{Offset: first.Offset - 1, Epoch: first.Epoch}
		res := brokertest.History(t, receiver, "room:hist", adapter.HistoryQuery{Since: since, Stream: brokertest.Stream})
		brokertest.Complete(t, res, first.Offset, "kept")
		if st := receiver.Stats(); st.Replayed != 0 || st.Stale != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("messages_of_one_node_out_of_order_are_each_delivered_once", func(t *testing.T) {
		sender, _ := node(t, opts)
		receiver, s := node(t, opts)
		subscribe(t, receiver, "room:e", "room:end")
		other := newSigner(key, [8]byte{'o', 'o', 'o'})
		var msgs []string
		for i := range 4 {
			msgs = append(msgs, plain(other.seal("wsgate:room:e", []byte{'0' + byte(i)})))
		}
		for _, i := range []int{3, 1, 0, 2, 1, 3} { // as two shards could interleave them, then two replays
			inject(t, "wsgate:room:e", msgs[i])
		}
		publish(t, sender, "room:end", nil)
		expectOnly(t, s, "3", "1", "0", "2")
		if st := receiver.Stats(); st.Replayed != 2 {
			t.Fatalf("stats %+v, want 2 replayed", st)
		}
	})
}

// plain frames a sealed message as a node publishes it without a stream.
func plain(sealed []byte) string { return string(append([]byte{markPlain}, sealed...)) }

// capture subscribes to channel with a plain client, runs send, and
// returns the first message seen there.
func capture(t *testing.T, addr, channel string, send func()) string {
	t.Helper()
	c := rawClient(t, addr)
	numsub := func() (int64, error) {
		arr, err := c.Do(context.Background(), c.B().PubsubNumsub().Channel(channel).Build()).ToArray()
		if err != nil || len(arr) != 2 {
			return 0, fmt.Errorf("PUBSUB NUMSUB: %v", err)
		}
		return arr[1].AsInt64()
	}
	before, err := numsub()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Receive(ctx, c.B().Subscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
			select {
			case got <- m.Message:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	// Receive has no callback for the subscription itself: wait until
	// Redis counts one more subscriber.
	eventually(t, "the capturing subscription", func() error {
		n, err := numsub()
		if err == nil && n <= before {
			err = fmt.Errorf("%d subscribers", n)
		}
		return err
	})
	send()
	select {
	case m := <-got:
		return m
	case <-time.After(waitFor):
		t.Fatalf("nothing captured on %s", channel)
		return ""
	}
}
