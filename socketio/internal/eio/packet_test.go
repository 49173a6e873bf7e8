package eio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	cases := []struct {
		name   string
		frame  string
		binary bool
		want   Packet
		err    error // nil: accepted
	}{
		{"message_text", "4hello", false, Packet{Type: Message, Data: []byte("hello")}, nil},
		{"open_without_payload", "0", false, Packet{Type: Open}, nil},
		{"close", "1", false, Packet{Type: Close}, nil},
		{"ping_probe", "2probe", false, Packet{Type: Ping, Data: []byte("probe")}, nil},
		{"pong", "3", false, Packet{Type: Pong}, nil},
		{"upgrade", "5", false, Packet{Type: Upgrade}, nil},
		{"noop", "6", false, Packet{Type: Noop}, nil},
		{"message_with_multibyte_utf8", "4€✓", false, Packet{Type: Message, Data: []byte("€✓")}, nil},
		{"binary_frame_is_a_binary_message", "\x01\x02\x03\x04", true, Packet{Type: Message, Binary: true, Data: []byte{1, 2, 3, 4}}, nil},
		{"empty_binary_frame_is_an_empty_binary_message", "", true, Packet{Type: Message, Binary: true, Data: []byte{}}, nil},
		{"base64_text_frame_is_a_binary_message", "bAQIDBA==", false, Packet{Type: Message, Binary: true, Data: []byte{1, 2, 3, 4}}, nil},
		{"unpadded_base64_is_accepted", "bAQIDBA", false, Packet{Type: Message, Binary: true, Data: []byte{1, 2, 3, 4}}, nil},
		{"empty_base64_is_an_empty_binary_message", "b", false, Packet{Type: Message, Binary: true, Data: []byte{}}, nil},
		{"empty_text_frame_is_refused", "", false, Packet{}, ErrInvalid},
		{"type_7_is_refused", "7", false, Packet{}, ErrInvalid},
		{"letter_type_is_refused", "abc", false, Packet{}, ErrInvalid},
		{"bad_base64_is_refused", "b!!!!", false, Packet{}, ErrInvalid},
		{"base64_with_bad_length_is_refused", "bA", false, Packet{}, ErrInvalid},
		{"invalid_utf8_is_refused", "4\xff\xfe", false, Packet{}, ErrInvalid},
		{"truncated_utf8_is_refused", "4\xe2\x82", false, Packet{}, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeFrame([]byte(tc.frame), tc.binary, Limits{})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !samePacket(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeFrameLimits(t *testing.T) {
	lim := Limits{MaxPayload: 8}
	t.Run("text_frame_at_the_limit_is_accepted", func(t *testing.T) {
		if _, err := DecodeFrame([]byte("41234567"), false, lim); err != nil {
			t.Fatal(err)
		}
	})
	for _, binary := range []bool{false, true} {
		name := "text_frame_over_the_limit_is_too_large"
		if binary {
			name = "binary_frame_over_the_limit_is_too_large"
		}
		t.Run(name, func(t *testing.T) {
			_, err := DecodeFrame([]byte("412345678"), binary, lim)
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrTooLarge wrapping ErrInvalid", err)
			}
		})
	}
	t.Run("zero_limits_default_to_the_reference_maxPayload", func(t *testing.T) {
		if _, err := DecodeFrame(make([]byte, DefaultMaxPayload), true, Limits{}); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeFrame(make([]byte, DefaultMaxPayload+1), true, Limits{}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
}

func TestDecodeFrameAliasesTextFrames(t *testing.T) {
	frame := []byte("4hello")
	p, err := DecodeFrame(frame, false, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if &p.Data[0] != &frame[1] {
		t.Fatal("text payload was copied; want a subslice of the frame")
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = DecodeFrame(frame, false, Limits{}) })
	if allocs != 0 {
		t.Fatalf("DecodeFrame allocates %.0f times per text frame, want 0", allocs)
	}
}

func TestAppendFrame(t *testing.T) {
	cases := []struct {
		name       string
		p          Packet
		b64        bool
		wantFrame  string
		wantBinary bool
	}{
		{"message_is_type_digit_and_payload", Packet{Type: Message, Data: []byte("hello")}, false, "4hello", false},
		{"ping_without_payload", Packet{Type: Ping}, false, "2", false},
		{"pong_probe", Packet{Type: Pong, Data: []byte("probe")}, false, "3probe", false},
		{"binary_message_is_sent_unchanged_in_a_binary_frame", Packet{Type: Message, Binary: true, Data: []byte{1, 2, 3, 4}}, false, "\x01\x02\x03\x04", true},
		{"binary_message_for_a_b64_client_is_base64_text", Packet{Type: Message, Binary: true, Data: []byte{1, 2, 3, 4}}, true, "bAQIDBA==", false},
		{"text_message_for_a_b64_client_is_unchanged", Packet{Type: Message, Data: []byte("x")}, true, "4x", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame, binary := AppendFrame(nil, tc.p, tc.b64)
			if string(frame) != tc.wantFrame || binary != tc.wantBinary {
				t.Fatalf("got %q binary=%v, want %q binary=%v", frame, binary, tc.wantFrame, tc.wantBinary)
			}
			back, err := DecodeFrame(frame, binary, Limits{})
			if err != nil || !samePacket(back, tc.p) {
				t.Fatalf("decoding the frame gives %+v, %v; want %+v", back, err, tc.p)
			}
		})
	}
}

func TestPacketTypeString(t *testing.T) {
	want := []string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}
	for i, w := range want {
		if got := PacketType(i).String(); got != w {
			t.Errorf("PacketType(%d) = %q, want %q", i, got, w)
		}
	}
	if got := PacketType(9).String(); !strings.Contains(got, "9") {
		t.Errorf("PacketType(9) = %q", got)
	}
}

func samePacket(a, b Packet) bool {
	return a.Type == b.Type && a.Binary == b.Binary && bytes.Equal(a.Data, b.Data)
}
