package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// clientFrame encodes a frame as a client sends it: masked (unless
// unmasked), with the given first-byte bits.
func clientFrame(b0 byte, payload []byte, opts ...func(*[]byte)) []byte {
	key := [4]byte{0x1f, 0x2e, 0x3d, 0x4c}
	b := []byte{b0}
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, maskBit|byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
	}
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= key[i&3]
	}
	for _, o := range opts {
		o(&b)
	}
	return b
}

func unmasked(b *[]byte) {
	// Drop the mask bit and key; the payload must be unmasked again.
	fr := *b
	hl := 2
	switch fr[1] & 0x7f {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	key := fr[hl : hl+4]
	payload := append([]byte(nil), fr[hl+4:]...)
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	out := append([]byte{fr[0], fr[1] &^ maskBit}, fr[2:hl]...)
	*b = append(out, payload...)
}

func fin(op Opcode) byte  { return finBit | byte(op) }
func cont(op Opcode) byte { return byte(op) }

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

type got struct {
	op      Opcode
	payload string
}

func TestReader(t *testing.T) {
	deflated := Deflate([]byte("hello, compressed world"))
	cases := []struct {
		name    string
		in      []byte
		opts    ReaderOptions
		want    []got
		code    StatusCode // the error's close code, 0: io.EOF after want
		peer    bool
		wantErr error
	}{
		{name: "masked_text_message", in: clientFrame(fin(OpText), []byte("hi")), want: []got{{OpText, "hi"}}},
		{name: "binary_is_not_checked_for_utf8", in: clientFrame(fin(OpBinary), []byte{0xff, 0xfe}), want: []got{{OpBinary, "\xff\xfe"}}},
		{name: "unmasked_frame_is_a_protocol_error", in: clientFrame(fin(OpText), []byte("hi"), unmasked), code: StatusProtocolError},
		{name: "fragments_are_joined", in: concat(clientFrame(cont(OpText), []byte("a")), clientFrame(cont(OpContinuation), []byte("b")), clientFrame(fin(OpContinuation), []byte("c"))), want: []got{{OpText, "abc"}}},
		{name: "ping_between_fragments_comes_first", in: concat(clientFrame(cont(OpText), []byte("a")), clientFrame(fin(OpPing), []byte("p")), clientFrame(fin(OpContinuation), []byte("b"))), want: []got{{OpPing, "p"}, {OpText, "ab"}}},
		{name: "pong_is_returned", in: clientFrame(fin(OpPong), []byte("x")), want: []got{{OpPong, "x"}}},
		{name: "utf8_split_across_fragments_is_valid", in: concat(clientFrame(cont(OpText), []byte("\xc3")), clientFrame(fin(OpContinuation), []byte("\xa9"))), want: []got{{OpText, "é"}}},
		{name: "continuation_without_a_message", in: clientFrame(fin(OpContinuation), []byte("x")), code: StatusProtocolError},
		{name: "new_message_inside_a_fragmented_one", in: concat(clientFrame(cont(OpText), []byte("a")), clientFrame(fin(OpText), []byte("b"))), code: StatusProtocolError},
		{name: "fragmented_ping", in: clientFrame(cont(OpPing), nil), code: StatusProtocolError},
		{name: "control_frame_over_125_bytes", in: clientFrame(fin(OpPing), bytes.Repeat([]byte("p"), 126)), code: StatusProtocolError},
		{name: "reserved_data_opcode", in: clientFrame(fin(3), nil), code: StatusProtocolError},
		{name: "reserved_control_opcode", in: clientFrame(fin(0xb), nil), code: StatusProtocolError},
		{name: "rsv2_set", in: clientFrame(fin(OpText)|rsv2Bit, nil), code: StatusProtocolError},
		{name: "rsv1_without_compression", in: clientFrame(fin(OpText)|rsv1Bit, []byte("x")), code: StatusProtocolError},
		{name: "rsv1_on_a_control_frame", in: clientFrame(fin(OpPing)|rsv1Bit, nil), opts: ReaderOptions{Compressed: true}, code: StatusProtocolError},
		{name: "invalid_utf8_text", in: clientFrame(fin(OpText), []byte{0xc3, 0x28}), code: StatusInvalidPayload},
		{name: "frame_over_the_limit_is_refused_at_its_header", in: clientFrame(fin(OpText), make([]byte, 11))[:8], opts: ReaderOptions{MaxMessageBytes: 10}, code: StatusMessageTooBig},
		{name: "fragments_over_the_limit", in: concat(clientFrame(cont(OpText), make([]byte, 6)), clientFrame(fin(OpContinuation), make([]byte, 6))), opts: ReaderOptions{MaxMessageBytes: 10}, code: StatusMessageTooBig},
		{name: "a_fragmented_message_does_not_count_against_the_next", in: concat(clientFrame(cont(OpText), make([]byte, 200)), clientFrame(fin(OpContinuation), make([]byte, 200)), clientFrame(fin(OpBinary), make([]byte, 900))), opts: ReaderOptions{MaxMessageBytes: 1000}, want: []got{{OpText, string(make([]byte, 400))}, {OpBinary, string(make([]byte, 900))}}},
		{name: "empty_non_final_fragment", in: concat(clientFrame(cont(OpText), []byte("a")), clientFrame(cont(OpContinuation), nil)), code: StatusPolicyViolation},
		{name: "empty_non_final_first_frame", in: clientFrame(cont(OpText), nil), code: StatusPolicyViolation},
		{name: "too_many_fragments", in: concat(clientFrame(cont(OpText), []byte("a")), clientFrame(cont(OpContinuation), []byte("b")), clientFrame(cont(OpContinuation), []byte("c"))), opts: ReaderOptions{MaxFragments: 2}, code: StatusPolicyViolation},
		{name: "empty_final_message_is_fine", in: clientFrame(fin(OpText), nil), want: []got{{OpText, ""}}},
		{name: "close_with_a_code", in: clientFrame(fin(OpClose), closePayload(1000, "bye")), code: StatusNormalClosure, peer: true},
		{name: "close_without_payload", in: clientFrame(fin(OpClose), nil), code: StatusNoStatusRcvd, peer: true},
		{name: "close_application_code", in: clientFrame(fin(OpClose), closePayload(4001, "")), code: 4001, peer: true},
		{name: "close_payload_of_one_byte", in: clientFrame(fin(OpClose), []byte{3}), code: StatusProtocolError},
		{name: "close_code_1005_is_never_sent", in: clientFrame(fin(OpClose), closePayload(1005, "")), code: StatusProtocolError},
		{name: "close_code_999", in: clientFrame(fin(OpClose), closePayload(999, "")), code: StatusProtocolError},
		{name: "close_code_1004", in: clientFrame(fin(OpClose), closePayload(1004, "")), code: StatusProtocolError},
		{name: "close_code_1015", in: clientFrame(fin(OpClose), closePayload(1015, "")), code: StatusProtocolError},
		{name: "close_code_2000", in: clientFrame(fin(OpClose), closePayload(2000, "")), code: StatusProtocolError},
		{name: "close_reason_not_utf8", in: clientFrame(fin(OpClose), closePayload(1000, "\xff")), code: StatusInvalidPayload},
		{name: "length_with_the_top_bit_set", in: append([]byte{fin(OpBinary), maskBit | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, 0, 0, 0, 0), code: StatusProtocolError},
		{name: "deflated_message", in: clientFrame(fin(OpText)|rsv1Bit, deflated), opts: ReaderOptions{Compressed: true}, want: []got{{OpText, "hello, compressed world"}}},
		{name: "deflated_message_in_fragments", in: concat(clientFrame(cont(OpText)|rsv1Bit, deflated[:3]), clientFrame(fin(OpContinuation), deflated[3:])), opts: ReaderOptions{Compressed: true}, want: []got{{OpText, "hello, compressed world"}}},
		{name: "rsv1_on_a_continuation", in: concat(clientFrame(cont(OpText)|rsv1Bit, deflated[:3]), clientFrame(fin(OpContinuation)|rsv1Bit, deflated[3:])), opts: ReaderOptions{Compressed: true}, code: StatusProtocolError},
		{name: "deflate_bomb_over_the_limit", in: clientFrame(fin(OpText)|rsv1Bit, Deflate(make([]byte, 1<<20))), opts: ReaderOptions{Compressed: true, MaxMessageBytes: 64 << 10}, code: StatusMessageTooBig},
		{name: "invalid_deflate_data", in: clientFrame(fin(OpText)|rsv1Bit, []byte{0xff, 0xff, 0xff}), opts: ReaderOptions{Compressed: true}, code: StatusInvalidPayload},
		{name: "truncated_frame", in: clientFrame(fin(OpText), []byte("hello"))[:8], wantErr: io.ErrUnexpectedEOF},
		{name: "large_frame", in: clientFrame(fin(OpBinary), bytes.Repeat([]byte("L"), 70000)), want: []got{{OpBinary, strings.Repeat("L", 70000)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.MaxMessageBytes == 0 {
				tc.opts.MaxMessageBytes = 1 << 20
			}
			rd := NewReader(bytes.NewReader(tc.in), nil, tc.opts)
			for i, w := range tc.want {
				op, p, err := rd.Next()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if op != w.op || string(p) != w.payload {
					t.Fatalf("message %d = %v %.40q, want %v %.40q", i, op, p, w.op, w.payload)
				}
			}
			_, _, err := rd.Next()
			var ce *CloseError
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case tc.code == 0:
				if !errors.Is(err, io.EOF) {
					t.Fatalf("err = %v, want io.EOF", err)
				}
			case !errors.As(err, &ce):
				t.Fatalf("err = %v, want a close error %d", err, tc.code)
			case ce.Code != tc.code || ce.Peer != tc.peer:
				t.Fatalf("err = %+v, want code %d peer %v", ce, tc.code, tc.peer)
			}
		})
	}
}

// A frame declaring more than the limit is refused before any of its
// payload arrives: a reader waiting for it would hold the connection until
// the heartbeat noticed.
func TestReaderRefusesAnOversizedFrameAtItsHeader(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	rd := NewReader(pr, nil, ReaderOptions{MaxMessageBytes: 1024})
	hdr := clientFrame(fin(OpBinary), make([]byte, 1<<20))[:14]
	go func() { _, _ = pw.Write(hdr) }() // and nothing more
	_, _, err := rd.Next()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != StatusMessageTooBig {
		t.Fatalf("err = %v, want close 1009", err)
	}
}

// Bytes net/http read past the handshake are the start of the stream.
func TestReaderStartsWithTheBufferedBytes(t *testing.T) {
	first, second := clientFrame(fin(OpText), []byte("one")), clientFrame(fin(OpText), []byte("two"))
	stream := concat(first, second)
	rd := NewReader(bytes.NewReader(stream[5:]), stream[:5], ReaderOptions{MaxMessageBytes: 100})
	for _, want := range []string{"one", "two"} {
		_, p, err := rd.Next()
		if err != nil || string(p) != want {
			t.Fatalf("got %q, %v; want %q", p, err, want)
		}
	}
}

// After a large message the reader goes back to its small buffer.
func TestReaderLetsGoOfLargeBuffers(t *testing.T) {
	stream := concat(clientFrame(fin(OpBinary), make([]byte, 100_000)), clientFrame(fin(OpText), []byte("small")))
	rd := NewReader(bytes.NewReader(stream), nil, ReaderOptions{MaxMessageBytes: 1 << 20})
	if _, _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	if _, p, err := rd.Next(); err != nil || string(p) != "small" {
		t.Fatalf("%q %v", p, err)
	}
	if len(rd.buf) != smallBuffer || &rd.buf[0] != &rd.small[0] {
		t.Fatalf("buffer of %d bytes kept", len(rd.buf))
	}
}

func FuzzReader(f *testing.F) {
	f.Add(clientFrame(fin(OpText), []byte("hi")), false)
	f.Add(concat(clientFrame(cont(OpText), []byte("a")), clientFrame(fin(OpPing), nil), clientFrame(fin(OpContinuation), []byte("b"))), false)
	f.Add(clientFrame(fin(OpClose), closePayload(1000, "x")), false)
	f.Add(clientFrame(fin(OpText)|rsv1Bit, Deflate([]byte("zip"))), true)
	f.Fuzz(func(t *testing.T, in []byte, compressed bool) {
		rd := NewReader(bytes.NewReader(in), nil, ReaderOptions{MaxMessageBytes: 4096, Compressed: compressed})
		for range 1000 {
			op, p, err := rd.Next()
			if err != nil {
				var ce *CloseError
				if !errors.As(err, &ce) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			switch op {
			case OpText, OpBinary:
				if len(p) > 4096 {
					t.Fatalf("message of %d bytes past the limit", len(p))
				}
			case OpPing, OpPong:
				if len(p) > MaxControlPayload {
					t.Fatalf("control payload of %d bytes", len(p))
				}
			default:
				t.Fatalf("returned opcode %v", op)
			}
		}
	})
}
