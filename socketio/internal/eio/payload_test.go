package eio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodePayload(t *testing.T) {
	bin := func(b ...byte) Packet { return Packet{Type: Message, Binary: true, Data: b} }
	msg := func(s string) Packet { return Packet{Type: Message, Data: []byte(s)} }
	cases := []struct {
		name string
		body string
		want []Packet
		err  error
	}{
		// The three bodies of the official suite's polling message cases.
		{"one_text_packet", "4hello", []Packet{msg("hello")}, nil},
		{"several_text_packets", "4test1\x1e4test2\x1e4test3", []Packet{msg("test1"), msg("test2"), msg("test3")}, nil},
		{"text_and_binary_packets", "4hello\x1ebAQIDBA==", []Packet{msg("hello"), bin(1, 2, 3, 4)}, nil},
		{"pong_and_close", "3\x1e1", []Packet{{Type: Pong}, {Type: Close}}, nil},
		{"message_with_empty_payload", "4", []Packet{msg("")}, nil},
		{"invalid_packet_format_is_refused", "abc", nil, ErrInvalid},
		{"empty_body_is_refused", "", nil, ErrInvalid},
		{"trailing_separator_is_refused", "4a\x1e", nil, ErrInvalid},
		{"leading_separator_is_refused", "\x1e4a", nil, ErrInvalid},
		{"empty_packet_between_separators_is_refused", "4a\x1e\x1e4b", nil, ErrInvalid},
		{"bad_packet_after_good_ones_refuses_the_whole_payload", "4a\x1e4b\x1e9", nil, ErrInvalid},
		{"bad_base64_is_refused", "4a\x1eb****", nil, ErrInvalid},
		{"invalid_utf8_is_refused", "4a\x1e4\xc3", nil, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePayload(nil, []byte(tc.body), Limits{})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if len(got) != 0 {
					t.Fatalf("refused payload returned %d packets", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d packets, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !samePacket(got[i], tc.want[i]) {
					t.Fatalf("packet %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// Massive packets (CVE-2020-36049 and its Engine.IO sibling): a long-polling
// body is bounded in bytes and in packets before any packet is decoded.
func TestDecodePayloadBoundsMassivePayloads(t *testing.T) {
	lim := Limits{MaxPayload: 64, MaxPackets: 4}
	cases := []struct {
		name string
		body string
		err  error
	}{
		{"body_at_the_byte_limit_is_accepted", "4" + strings.Repeat("a", 63), nil},
		{"body_over_the_byte_limit_is_too_large", "4" + strings.Repeat("a", 64), ErrTooLarge},
		{"packets_at_the_count_limit_are_accepted", "6\x1e6\x1e6\x1e6", nil},
		{"packets_over_the_count_limit_are_too_large", "6\x1e6\x1e6\x1e6\x1e6", ErrTooLarge},
		{"separators_alone_count_as_packets", strings.Repeat("\x1e", 10), ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePayload(nil, []byte(tc.body), lim)
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.err) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want %v wrapping ErrInvalid", err, tc.err)
			}
			if len(got) != 0 {
				t.Fatalf("refused payload returned %d packets", len(got))
			}
		})
	}
	t.Run("default_count_limit_refuses_a_megabyte_of_noops", func(t *testing.T) {
		body := bytes.Repeat([]byte("6\x1e"), DefaultMaxPayload/2-1)
		body = append(body, '6')
		if _, err := DecodePayload(nil, body, Limits{}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
}

func TestDecodePayloadRefusalChangesNothing(t *testing.T) {
	dst := []Packet{{Type: Ping}}
	got, err := DecodePayload(dst, []byte("4a\x1e4b\x1ex"), Limits{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if len(got) != 1 || got[0].Type != Ping {
		t.Fatalf("dst after a refusal = %+v, want the one packet passed in", got)
	}
	// The slots the refused payload wrote are cleared so they pin no body.
	if full := got[:cap(got)]; len(full) > 1 && full[1].Data != nil {
		t.Fatal("refused packets left behind in dst's spare capacity")
	}
}

func TestDecodePayloadReusesDst(t *testing.T) {
	body := []byte("4hello\x1e3\x1e4world")
	dst := make([]Packet, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		dst, err = DecodePayload(dst[:0], body, Limits{})
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("DecodePayload into a reused slice allocates %.0f times, want 0", allocs)
	}
}

func TestAppendPayload(t *testing.T) {
	cases := []struct {
		name    string
		packets []Packet
		want    string
	}{
		{"one_packet", []Packet{{Type: Message, Data: []byte("hello")}}, "4hello"},
		{"packets_are_separated_by_0x1e", []Packet{{Type: Message, Data: []byte("test1")}, {Type: Message, Data: []byte("test2")}}, "4test1\x1e4test2"},
		{"binary_is_b_and_base64", []Packet{{Type: Message, Data: []byte("hello")}, {Type: Message, Binary: true, Data: []byte{1, 2, 3, 4}}}, "4hello\x1ebAQIDBA=="},
		{"noop_releases_a_poll", []Packet{{Type: Noop}}, "6"},
		{"nothing_is_nothing", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendPayload(nil, tc.packets...)
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			n := 0
			for i, p := range tc.packets {
				if i > 0 {
					n++
				}
				n += PayloadLen(p)
			}
			if n != len(got) {
				t.Fatalf("PayloadLen sums to %d, payload is %d bytes", n, len(got))
			}
		})
	}
}
