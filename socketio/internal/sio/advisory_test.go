package sio

import (
	"errors"
	"strings"
	"testing"
)

// Regression tests for the published advisories against the reference
// parser, at the decoder level. Each case is a packet an attacker sends; the
// decoder must refuse it with ErrInvalid before anything reaches a handler,
// and the connection is then closed.

func refuses(t *testing.T, d *Decoder, text string, bins ...string) {
	t.Helper()
	p, ok, err := feed(d, text, bins...)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%q: got %+v ok=%v err=%v, want ErrInvalid", text, p, ok, err)
	}
	if d.Pending() {
		t.Fatalf("%q: decoder still waiting after a refusal", text)
	}
}

// CVE-2022-2421: the placeholder's num indexed the attachment array without
// checks, so a crafted num (an object, "toString", an out-of-range index)
// put something other than a Buffer in the event's arguments.
func TestPlaceholderNumMustBeAnInRangeIntegerUsedOnce(t *testing.T) {
	ph := func(num string) string { return `{"_placeholder":true,"num":` + num + `}` }
	cases := []struct {
		name string
		text string
		bins []string
	}{
		{"num_is_a_method_name", `51-["x",` + ph(`"toString"`) + `]`, []string{"a"}},
		{"num_is_proto", `51-["x",` + ph(`"__proto__"`) + `]`, []string{"a"}},
		{"num_is_an_object", `51-["x",` + ph(`{"length":1}`) + `]`, []string{"a"}},
		{"num_is_an_array", `51-["x",` + ph(`[0]`) + `]`, []string{"a"}},
		{"num_is_a_numeric_string", `51-["x",` + ph(`"0"`) + `]`, []string{"a"}},
		{"num_is_null", `51-["x",` + ph(`null`) + `]`, []string{"a"}},
		{"num_is_negative", `51-["x",` + ph(`-1`) + `]`, []string{"a"}},
		{"num_is_a_fraction", `51-["x",` + ph(`0.5`) + `]`, []string{"a"}},
		{"num_with_exponent", `51-["x",` + ph(`0e0`) + `]`, []string{"a"}},
		{"num_with_leading_zero", `52-["x",` + ph(`0`) + `,` + ph(`01`) + `]`, []string{"a", "b"}},
		{"num_equal_to_the_count", `51-["x",` + ph(`1`) + `]`, []string{"a"}},
		{"num_far_out_of_range", `51-["x",` + ph(`4294967296`) + `]`, []string{"a"}},
		{"num_beyond_a_64_bit_set", `51-["x",` + ph(`0`) + `,` + ph(`70`) + `]`, []string{"a"}},
		{"num_missing", `51-["x",{"_placeholder":true}]`, []string{"a"}},
		{"num_used_twice", `52-["x",` + ph(`0`) + `,` + ph(`0`) + `]`, []string{"a", "b"}},
		{"declared_attachment_never_used", `52-["x",` + ph(`0`) + `]`, []string{"a", "b"}},
		{"placeholder_flag_not_true", `51-["x",{"_placeholder":1,"num":0}]`, []string{"a"}},
		{"placeholder_flag_a_string", `51-["x",{"_placeholder":"true","num":0}]`, []string{"a"}},
		{"placeholder_with_an_extra_key", `51-["x",{"_placeholder":true,"num":0,"toString":1}]`, []string{"a"}},
		{"placeholder_key_twice", `51-["x",{"_placeholder":true,"_placeholder":true,"num":0}]`, []string{"a"}},
		{"num_key_twice", `51-["x",{"_placeholder":true,"num":0,"num":0}]`, []string{"a"}},
		{"placeholder_in_a_plain_event", `2["x",` + ph(`0`) + `]`, nil},
		{"out_of_range_placeholder_in_a_plain_event", `2["x",` + ph(`70`) + `]`, nil},
		{"placeholder_in_a_plain_ack", `31[` + ph(`0`) + `]`, nil},
		{"placeholder_in_connect_auth", `0{"token":` + ph(`0`) + `}`, nil},
		{"escaped_placeholder_key_in_a_plain_event", `2["x",{"\u005fplaceholder":true,"num":0}]`, nil},
		{"placeholder_false_in_a_plain_event", `2["x",{"_placeholder":false}]`, nil},
		{"placeholder_as_the_event_name", `51-[` + ph(`0`) + `]`, []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refuses(t, NewDecoder(Limits{}), tc.text, tc.bins...)
		})
	}
}

// CVE-2023-32695: an event whose first element was not a string (an object
// named toString, an array) or a reserved name crashed or confused the
// server's dispatch.
func TestEventNameMustBeANonReservedStringOrAnInteger(t *testing.T) {
	cases := []struct{ name, text string }{
		{"name_is_an_object", `2[{"toString":"x"}]`},
		{"name_is_an_empty_object", `2[{}]`},
		{"name_is_an_array", `2[["message"]]`},
		{"name_is_null", `2[null]`},
		{"name_is_a_boolean", `2[true]`},
		{"name_is_missing", `2[]`},
		{"name_is_a_fraction", `2[1.5]`},
		{"name_has_an_exponent", `2[1e3]`},
		{"name_is_negative_zero", `2[-0]`},
		{"name_is_an_integer_over_15_digits", `2[1234567890123456]`},
		{"name_is_connect", `2["connect"]`},
		{"name_is_connect_error", `2["connect_error"]`},
		{"name_is_disconnect", `2["disconnect"]`},
		{"name_is_disconnecting", `2["disconnecting"]`},
		{"name_is_newListener", `2["newListener","x"]`},
		{"name_is_removeListener", `2["removeListener"]`},
		{"reserved_name_hidden_behind_escapes", `2["\u0064isconnect"]`},
		{"reserved_name_in_a_binary_event", `51-["connect",{"_placeholder":true,"num":0}]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refuses(t, NewDecoder(Limits{}), tc.text, "a")
		})
	}
	// Near misses stay accepted: the check is not a substring match.
	for _, ok := range []string{`2["connected"]`, `2["Connect"]`, `2["disconnect "]`, `2[0]`, `2[123456789012345]`} {
		if _, done, err := NewDecoder(Limits{}).DecodeText([]byte(ok)); err != nil || !done {
			t.Errorf("%s: done=%v err=%v, want accepted", ok, done, err)
		}
	}
}

// CVE-2026-33151: the attachment count in the header was trusted, so a
// packet declaring a huge count made the server buffer binary messages
// without bound while it waited for them.
func TestAttachmentCountIsBoundedBeforeAnyAttachmentIsAwaited(t *testing.T) {
	cases := []struct {
		name string
		lim  Limits
		text string
	}{
		{"count_of_2^53", Limits{}, `59007199254740992-["x"]`},
		{"count_of_a_billion", Limits{}, `51000000000-["x"]`},
		{"count_of_eleven", Limits{}, `511-["x"]`},
		{"count_over_the_option", Limits{MaxAttachments: 2}, `53-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]`},
		{"count_of_zero", Limits{}, `50-["x"]`},
		{"count_missing", Limits{}, `5-["x"]`},
		{"count_without_dash", Limits{}, `51["x",{"_placeholder":true,"num":0}]`},
		{"count_not_a_number", Limits{}, `5a-["x"]`},
		{"binary_ack_count_of_2^53", Limits{}, `69007199254740992-1["x"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.lim)
			_, _, err := d.DecodeText([]byte(tc.text))
			if !errors.Is(err, ErrInvalid) || d.Pending() {
				t.Fatalf("err=%v pending=%v, want ErrInvalid and nothing awaited", err, d.Pending())
			}
		})
	}
	t.Run("attachment_bytes_are_bounded", func(t *testing.T) {
		d := NewDecoder(Limits{MaxAttachmentBytes: 10})
		text := `52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`
		refuses(t, d, text, strings.Repeat("a", 6), strings.Repeat("b", 5))
		if _, ok, err := feed(NewDecoder(Limits{MaxAttachmentBytes: 10}), text, strings.Repeat("a", 5), strings.Repeat("b", 5)); err != nil || !ok {
			t.Fatalf("10 bytes with a 10-byte limit: ok=%v err=%v", ok, err)
		}
	})
	t.Run("max_attachments_is_capped_at_64", func(t *testing.T) {
		if d := NewDecoder(Limits{MaxAttachments: 1000}); d.lim.MaxAttachments != maxAttachmentsCap {
			t.Fatalf("MaxAttachments = %d, want the cap %d", d.lim.MaxAttachments, maxAttachmentsCap)
		}
	})
}

// CVE-2020-36049: the reference parser built a massive packet's string by
// repeated concatenation, and nothing bounded it. Here a packet's size is
// bounded by the transport (eio.Limits.MaxPayload, and per long-polling
// body the packet count: see eio's TestDecodePayloadBoundsMassivePayloads);
// the decoder bounds what can still be large inside an accepted frame.
func TestMassivePacketPartsAreBounded(t *testing.T) {
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	cases := []struct{ name, text string }{
		{"deep_nesting_in_an_argument", `2["x",` + deep + `]`},
		{"deep_nesting_in_connect_auth", `0{"a":` + strings.Repeat(`{"a":`, 100_000) + `1` + strings.Repeat("}", 100_001)},
		{"huge_namespace", "0/" + strings.Repeat("n", 1<<20) + ","},
		{"huge_event_name", `2["` + strings.Repeat("e", 1<<20) + `"]`},
		{"huge_ack_id", "3" + strings.Repeat("9", 1<<20) + "[]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refuses(t, NewDecoder(Limits{}), tc.text)
		})
	}
}
