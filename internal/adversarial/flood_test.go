package adversarial

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/hub"
)

// maxFlood bounds the frames one flood sends; every flood below is closed
// long before.
const maxFlood = 200_000

// TestFloods has one authenticated connection flood the server the ways a
// script costs it CPU without sending anything it would act on, frame by
// frame as fast as the socket takes them, without ever stopping on its
// own. Each flood is closed with its code, and while the flooder is being
// closed a genuine client on the same server is still answered.
func TestFloods(t *testing.T) {
	srv := Start(t, Config{})
	probe := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "probe"}))
	junk := [][]byte{
		[]byte("not json"),
		[]byte(`{"type":"event"`),
		[]byte(`{"type":"teleport","room":"tenant:t1"}`),
		[]byte(`{"type":"event","event":"x","data":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`),
		[]byte(`[]`),
	}
	ping := []byte("ping")
	tests := []struct {
		name  string
		start func(c *RawConn) // sent once, first
		unit  func(c *RawConn, i int)
		code  int
	}{
		{name: "pings_close_1008", unit: func(c *RawConn, _ int) { c.Send(FIN|OpPing, ping) }, code: 1008},
		{name: "pings_of_the_largest_size_close_1008",
			unit: func(c *RawConn, _ int) { c.Send(FIN|OpPing, make([]byte, 125)) }, code: 1008},
		{name: "unsolicited_pongs_close_1008", unit: func(c *RawConn, _ int) { c.Send(FIN|OpPong, ping) }, code: 1008},
		{name: "pings_and_pongs_alternating_close_1008", unit: func(c *RawConn, i int) {
			c.Send(FIN|[]byte{OpPing, OpPong}[i%2], ping)
		}, code: 1008},
		{name: "empty_continuations_close_1008",
			start: func(c *RawConn) { c.Send(OpText, []byte("{")) },
			unit:  func(c *RawConn, _ int) { c.Send(OpContinuation, nil) }, code: 1008},
		{name: "one_byte_continuations_close_1008",
			start: func(c *RawConn) { c.Send(OpText, []byte("{")) },
			unit:  func(c *RawConn, _ int) { c.Send(OpContinuation, []byte(" ")) }, code: 1008},
		{name: "continuations_adding_up_past_the_message_limit_close_1009",
			start: func(c *RawConn) { c.Send(OpText, []byte(`{"type":"event","event":"x","data":"`)) },
			unit:  func(c *RawConn, _ int) { c.Send(OpContinuation, []byte(strings.Repeat("a", 4<<10))) }, code: 1009},
		{name: "junk_messages_close_1008", unit: func(c *RawConn, i int) { c.Send(FIN|OpText, junk[i%len(junk)]) }, code: 1008},
		{name: "a_header_announcing_1_GiB_closes_1009_before_any_payload", start: func(c *RawConn) {
			hdr := binary.BigEndian.AppendUint64([]byte{FIN | OpText, 0x80 | 127}, 1<<30)
			c.SendBytes(append(hdr, 1, 2, 3, 4)) // the mask, and not one byte of the gigabyte
		}, code: 1009},
		{name: "a_header_announcing_2^63_bytes_closes_1002", start: func(c *RawConn) {
			hdr := binary.BigEndian.AppendUint64([]byte{FIN | OpText, 0x80 | 127}, 1<<63)
			c.SendBytes(append(hdr, 1, 2, 3, 4))
		}, code: 1002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A user per flood: the connections of floods before may still be
			// ending, and count against the per-user limit until they have.
			c := srv.ConnectRaw(t, Token(t, jwt.MapClaims{"sub": "flooder-" + tt.name}))
			if tt.start != nil {
				tt.start(c)
			}
			sent := flood(c, tt.unit)
			start := time.Now()
			_, before := c.ExpectClose(tt.code)
			took := time.Since(start)
			c.Close()
			t.Logf("closed with %d %s after the flood began, having sent %d frames (%d answered)",
				tt.code, took.Round(time.Millisecond), <-sent, len(before))
			// The server is not busy with the flooder: a genuine call is answered.
			ExpectError(t, probe.Call(map[string]any{"type": "event", "event": "after.flood"}), "UNKNOWN_EVENT")
		})
	}
}

// flood sends unit over and over on its own goroutine, flushing every 64
// frames, until the server stops reading, maxFlood frames or Wait. It
// returns a channel that receives how many frames were sent. With a nil
// unit it only flushes what is buffered.
func flood(c *RawConn, unit func(c *RawConn, i int)) <-chan int {
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		if unit == nil {
			_ = c.Flush()
			return
		}
		deadline := time.Now().Add(Wait)
		for n < maxFlood && time.Now().Before(deadline) {
			for range 64 {
				unit(c, n)
				n++
			}
			if c.Flush() != nil {
				return // the server closed: what the flood was for
			}
		}
	}()
	return sent
}

// TestDeflateBombs attacks a server that opted in to permessage-deflate
// with messages that are small on the wire and huge once inflated, whole
// or cut into fragments, and with data that is not deflate at all. The
// server inflates no further than its message limit: a bomb closes 1009,
// garbage 1007, a compressed bit on a continuation 1002.
func TestDeflateBombs(t *testing.T) {
	srv := Start(t, Config{Hub: func(o *hub.Options) { o.Compression = true }})
	bomb := deflate(t, make([]byte, 2<<20)) // 2 MiB of zeros, about 2 KiB on the wire
	for _, tt := range []struct {
		name string
		send func(c *RawConn)
		code int
	}{
		{"one_frame_inflating_to_2_MiB_closes_1009", func(c *RawConn) { c.Send(FIN|RSV1|OpText, bomb) }, 1009},
		{"fragments_inflating_to_2_MiB_close_1009", func(c *RawConn) {
			c.Send(RSV1|OpText, bomb[:len(bomb)/2])
			c.Send(FIN|OpContinuation, bomb[len(bomb)/2:])
		}, 1009},
		{"data_that_is_not_deflate_closes_1007", func(c *RawConn) { c.Send(FIN|RSV1|OpText, []byte{0xff, 0xff, 0xff, 0xff}) }, 1007},
		{"compressed_bit_on_a_continuation_closes_1002", func(c *RawConn) {
			c.Send(RSV1|OpText, bomb[:16])
			c.Send(FIN|RSV1|OpContinuation, bomb[16:32])
		}, 1002},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := srv.DialRaw(t, Handshake{
				Token:  Token(t, jwt.MapClaims{"sub": "bomber-" + tt.name}),
				Header: http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate; client_no_context_takeover; server_no_context_takeover"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
				t.Fatalf("compression not negotiated (%q)", ext)
			}
			c.ReadFrame() // the welcome
			tt.send(c)
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			closeFrame, before := c.ExpectClose(tt.code)
			if len(before) > 0 {
				t.Fatalf("answered before the close: %v", before)
			}
			c.AnswerClose(closeFrame)
			c.ExpectEnd()
		})
	}
}

// deflate compresses p as a permessage-deflate message: raw DEFLATE
// without the final empty block's 00 00 ff ff (RFC 7692 section 7.2.1).
func deflate(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}
