package sio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// want describes a decoded packet; args are compared as raw JSON text.
type want struct {
	typ     PacketType
	nsp     string
	id      int64 // -1: no ack id
	event   string
	numeric bool
	args    []string
	data    string
	atts    []string
}

func (w want) check(t *testing.T, p Packet) {
	t.Helper()
	id, hasID := uint64(0), w.id >= 0
	if hasID {
		id = uint64(w.id)
	}
	nsp := w.nsp
	if nsp == "" {
		nsp = "/"
	}
	if p.Type != w.typ || p.Namespace != nsp || p.HasID != hasID || p.ID != id ||
		p.Event != w.event || p.NumericEvent != w.numeric || string(p.Data) != w.data {
		t.Fatalf("got %s ns=%q id=%d/%v event=%q numeric=%v data=%s\nwant %s ns=%q id=%d event=%q numeric=%v data=%s",
			p.Type, p.Namespace, p.ID, p.HasID, p.Event, p.NumericEvent, p.Data, w.typ, nsp, w.id, w.event, w.numeric, w.data)
	}
	if len(p.Args) != len(w.args) {
		t.Fatalf("got %d args %s, want %d", len(p.Args), p.Args, len(w.args))
	}
	for i, a := range w.args {
		if string(p.Args[i]) != a {
			t.Fatalf("arg %d = %s, want %s", i, p.Args[i], a)
		}
	}
	if len(p.Attachments) != len(w.atts) {
		t.Fatalf("got %d attachments, want %d", len(p.Attachments), len(w.atts))
	}
	for i, a := range w.atts {
		if string(p.Attachments[i]) != a {
			t.Fatalf("attachment %d = %q, want %q", i, p.Attachments[i], a)
		}
	}
}

func TestDecodeText(t *testing.T) {
	cases := []struct {
		name string
		text string
		want want
	}{
		// The protocol document's examples and the official suite's packets.
		{"connect_main_namespace", "0", want{typ: Connect, id: -1}},
		{"connect_with_auth_payload", `0{"token":"123"}`, want{typ: Connect, id: -1, data: `{"token":"123"}`}},
		{"connect_custom_namespace", "0/custom,", want{typ: Connect, nsp: "/custom", id: -1}},
		{"connect_custom_namespace_without_comma", "0/custom", want{typ: Connect, nsp: "/custom", id: -1}},
		{"connect_custom_namespace_with_auth", `0/custom,{"token":"abc"}`, want{typ: Connect, nsp: "/custom", id: -1, data: `{"token":"abc"}`}},
		{"connect_answer_with_sid", `0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}`, want{typ: Connect, nsp: "/admin", id: -1, data: `{"sid":"oSO0OpakMV_3jnilAAAA"}`}},
		{"disconnect_main", "1", want{typ: Disconnect, id: -1}},
		{"disconnect_custom", "1/admin,", want{typ: Disconnect, nsp: "/admin", id: -1}},
		{"event", `2["foo"]`, want{typ: Event, id: -1, event: "foo", args: []string{}}},
		{"event_custom_namespace", `2/admin,["bar"]`, want{typ: Event, nsp: "/admin", id: -1, event: "bar", args: []string{}}},
		{"event_with_ack_id", `212["foo"]`, want{typ: Event, id: 12, event: "foo", args: []string{}}},
		{"event_with_ack_id_zero", `20["foo"]`, want{typ: Event, id: 0, event: "foo", args: []string{}}},
		{"event_with_largest_ack_id", `29007199254740991["foo"]`, want{typ: Event, id: 9007199254740991, event: "foo", args: []string{}}},
		{"event_args_are_raw_json_each", `2["message",1,"2",{"3":[true]}]`, want{typ: Event, id: -1, event: "message", args: []string{`1`, `"2"`, `{"3":[true]}`}}},
		{"event_args_keep_inner_space_and_lose_outer", `2 [ "m" , { "a" : 1 } ,null ] `, want{typ: Event, id: -1, event: "m", args: []string{`{ "a" : 1 }`, `null`}}},
		{"event_name_with_a_space", `2["chat message","hi"]`, want{typ: Event, id: -1, event: "chat message", args: []string{`"hi"`}}},
		{"event_name_with_escapes", `2["a\"b\u00e9"]`, want{typ: Event, id: -1, event: `a"bé`, args: []string{}}},
		{"numeric_event_name", `2[42,"x"]`, want{typ: Event, id: -1, event: "42", numeric: true, args: []string{`"x"`}}},
		{"negative_numeric_event_name", `2[-7]`, want{typ: Event, id: -1, event: "-7", numeric: true, args: []string{}}},
		{"ack", `3/admin,13["bar"]`, want{typ: Ack, nsp: "/admin", id: 13, args: []string{`"bar"`}}},
		{"ack_with_no_arguments", `3456[]`, want{typ: Ack, id: 456, args: []string{}}},
		{"ack_from_the_suite", `3456[1,"2",{"3":[false]}]`, want{typ: Ack, id: 456, args: []string{`1`, `"2"`, `{"3":[false]}`}}},
		{"ack_id_with_leading_zeros_reads_as_the_reference_does", `3007[]`, want{typ: Ack, id: 7, args: []string{}}},
		{"connect_error", `4{"message":"Not authorized"}`, want{typ: ConnectError, id: -1, data: `{"message":"Not authorized"}`}},
		{"connect_error_custom_namespace", `4/random,{"message":"Invalid namespace"}`, want{typ: ConnectError, nsp: "/random", id: -1, data: `{"message":"Invalid namespace"}`}},
		{"explicit_main_namespace", `2/,["x"]`, want{typ: Event, id: -1, event: "x", args: []string{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, ok, err := NewDecoder(Limits{}).DecodeText([]byte(tc.text))
			if err != nil || !ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			tc.want.check(t, p)
		})
	}
}

func TestDecodeTextRefuses(t *testing.T) {
	cases := []struct{ name, text string }{
		{"empty_packet", ""},
		{"unknown_type_7", `7["x"]`},
		{"unknown_type_letter", "abc"},  // the suite's "4abc"
		{"event_payload_object", "2{}"}, // the suite's "42{}"
		{"ack_id_with_letters", `2abc["message-with-ack",1,"2",{"3":[false]}]`}, // the suite's invalid ack id
		{"event_without_payload", "2"},
		{"event_empty_array", "2[]"},
		{"event_trailing_data", `2["x"]x`},
		{"event_two_json_values", `2["x"]["y"]`},
		{"event_unterminated", `2["x"`},
		{"event_bad_escape", `2["x\q"]`},
		{"event_bad_unicode_escape", `2["x\u12"]`},
		{"event_raw_control_character", "2[\"x\ty\"]"},
		{"event_invalid_utf8", "2[\"\xff\"]"},
		{"event_single_quotes", `2['x']`},
		{"event_trailing_comma", `2["x",]`},
		{"event_leading_zero_number", `2["x",01]`},
		{"event_bare_fraction", `2["x",.5]`},
		{"event_nan", `2["x",NaN]`},
		{"ack_without_id", `3[]`},
		{"ack_without_payload", `312`},
		{"ack_payload_object", `312{}`},
		{"ack_id_of_17_digits", `312345678901234567[]`},
		{"ack_id_over_2^53-1", `39007199254740992[]`},
		{"connect_with_ack_id", `012{}`},
		{"connect_payload_array", `0[]`},
		{"connect_payload_string", `0"x"`},
		{"connect_payload_only_space", `0 `},
		{"disconnect_with_payload", `1{}`},
		{"disconnect_with_ack_id", `112`},
		{"connect_error_without_payload", `4`},
		{"connect_error_string_payload", `4"Not authorized"`},
		{"connect_error_with_ack_id", `41{}`},
		{"namespace_with_control_character", "2/a\x01b,[\"x\"]"},
		{"namespace_over_the_limit", "0/" + strings.Repeat("a", DefaultMaxNamespace) + ","},
		{"event_name_over_the_limit", `2["` + strings.Repeat("a", DefaultMaxEventName+1) + `"]`},
		{"nesting_over_the_limit", "2[\"x\"," + strings.Repeat("[", DefaultMaxDepth) + strings.Repeat("]", DefaultMaxDepth) + "]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Limits{})
			p, ok, err := d.DecodeText([]byte(tc.text))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeText(%q) = %+v, %v, %v; want ErrInvalid", tc.text, p, ok, err)
			}
			if ok || d.Pending() {
				t.Fatal("a refused packet completed or left the decoder waiting")
			}
		})
	}
}

func TestDecodeLimitsAreOptions(t *testing.T) {
	nested := "2[\"x\"," + strings.Repeat("[", 3) + strings.Repeat("]", 3) + "]"
	if _, _, err := NewDecoder(Limits{MaxDepth: 4}).DecodeText([]byte(nested)); err != nil {
		t.Fatalf("depth 4 with MaxDepth 4: %v", err)
	}
	if _, _, err := NewDecoder(Limits{MaxDepth: 3}).DecodeText([]byte(nested)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("depth 4 with MaxDepth 3: err = %v, want ErrInvalid", err)
	}
	if _, _, err := NewDecoder(Limits{MaxNamespace: 4}).DecodeText([]byte("0/abc,")); err != nil {
		t.Fatalf("4-byte namespace with MaxNamespace 4: %v", err)
	}
	if _, _, err := NewDecoder(Limits{MaxNamespace: 3}).DecodeText([]byte("0/abc,")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("4-byte namespace with MaxNamespace 3: err = %v", err)
	}
	if _, _, err := NewDecoder(Limits{MaxEventName: 3}).DecodeText([]byte(`2["abcd"]`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("4-byte name with MaxEventName 3: err = %v", err)
	}
}

// feed decodes a text message and its binary messages.
func feed(d *Decoder, text string, bins ...string) (Packet, bool, error) {
	p, ok, err := d.DecodeText([]byte(text))
	for _, b := range bins {
		if err != nil || ok {
			break
		}
		p, ok, err = d.DecodeBinary([]byte(b))
	}
	return p, ok, err
}

func TestDecodeBinary(t *testing.T) {
	ph := func(n int) string { return `{"_placeholder":true,"num":` + string(rune('0'+n)) + `}` }
	cases := []struct {
		name string
		text string
		bins []string
		want want
	}{
		{"binary_event_from_the_suite", `52-["message",` + ph(0) + `,` + ph(1) + `]`, []string{"\x01\x02\x03", "\x04\x05\x06"},
			want{typ: BinaryEvent, id: -1, event: "message", args: []string{ph(0), ph(1)}, atts: []string{"\x01\x02\x03", "\x04\x05\x06"}}},
		{"binary_event_with_ack_from_the_suite", `52-789["message-with-ack",` + ph(0) + `,` + ph(1) + `]`, []string{"\x01\x02\x03", "\x04\x05\x06"},
			want{typ: BinaryEvent, id: 789, event: "message-with-ack", args: []string{ph(0), ph(1)}, atts: []string{"\x01\x02\x03", "\x04\x05\x06"}}},
		{"binary_ack", `61-15["bar",` + ph(0) + `]`, []string{"\x01\x02\x03\x04"},
			want{typ: BinaryAck, id: 15, args: []string{`"bar"`, ph(0)}, atts: []string{"\x01\x02\x03\x04"}}},
		{"binary_event_custom_namespace", `52-/admin,["baz",` + ph(0) + `,` + ph(1) + `]`, []string{"\x01\x02", "\x03\x04"},
			want{typ: BinaryEvent, nsp: "/admin", id: -1, event: "baz", args: []string{ph(0), ph(1)}, atts: []string{"\x01\x02", "\x03\x04"}}},
		{"nested_placeholder", `51-["x",{"a":[` + ph(0) + `]}]`, []string{"z"},
			want{typ: BinaryEvent, id: -1, event: "x", args: []string{`{"a":[` + ph(0) + `]}`}, atts: []string{"z"}}},
		{"placeholder_keys_in_any_order", `51-["x",{"num":0,"_placeholder":true}]`, []string{"z"},
			want{typ: BinaryEvent, id: -1, event: "x", args: []string{`{"num":0,"_placeholder":true}`}, atts: []string{"z"}}},
		{"placeholders_in_any_order", `52-["x",` + ph(1) + `,` + ph(0) + `]`, []string{"a", "b"},
			want{typ: BinaryEvent, id: -1, event: "x", args: []string{ph(1), ph(0)}, atts: []string{"a", "b"}}},
		{"empty_attachment", `51-["x",` + ph(0) + `]`, []string{""},
			want{typ: BinaryEvent, id: -1, event: "x", args: []string{ph(0)}, atts: []string{""}}},
		{"ten_attachments", `510-["x",` + ph(0) + `,` + ph(1) + `,` + ph(2) + `,` + ph(3) + `,` + ph(4) + `,` + ph(5) + `,` + ph(6) + `,` + ph(7) + `,` + ph(8) + `,` + ph(9) + `]`,
			[]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
			want{typ: BinaryEvent, id: -1, event: "x", args: []string{ph(0), ph(1), ph(2), ph(3), ph(4), ph(5), ph(6), ph(7), ph(8), ph(9)},
				atts: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Limits{})
			_, ok, err := d.DecodeText([]byte(tc.text))
			if err != nil || ok || !d.Pending() {
				t.Fatalf("text: ok=%v err=%v pending=%v; want the decoder waiting for attachments", ok, err, d.Pending())
			}
			var p Packet
			for i, b := range tc.bins {
				p, ok, err = d.DecodeBinary([]byte(b))
				if err != nil || ok != (i == len(tc.bins)-1) {
					t.Fatalf("attachment %d: ok=%v err=%v", i, ok, err)
				}
			}
			if d.Pending() {
				t.Fatal("decoder still pending after the last attachment")
			}
			tc.want.check(t, p)
		})
	}
}

func TestDecodeBinarySequenceErrors(t *testing.T) {
	t.Run("text_while_attachments_are_due_is_refused", func(t *testing.T) {
		d := NewDecoder(Limits{})
		_, _, err := feed(d, `52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "a")
		if err != nil || !d.Pending() {
			t.Fatalf("err=%v pending=%v", err, d.Pending())
		}
		if _, _, err := d.DecodeText([]byte(`2["y"]`)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if d.Pending() {
			t.Fatal("the decoder still waits after refusing")
		}
	})
	t.Run("binary_without_a_binary_packet_is_refused", func(t *testing.T) {
		d := NewDecoder(Limits{})
		if _, _, err := d.DecodeBinary([]byte{1}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if _, _, err := feed(d, `2["x"]`, "extra"); err != nil {
			t.Fatalf("a complete text packet then: %v", err)
		}
		if _, _, err := d.DecodeBinary([]byte{1}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("binary after a complete packet: err = %v, want ErrInvalid", err)
		}
	})
	t.Run("reset_drops_a_partial_packet", func(t *testing.T) {
		d := NewDecoder(Limits{})
		_, _, _ = d.DecodeText([]byte(`51-["x",{"_placeholder":true,"num":0}]`))
		d.Reset()
		if d.Pending() {
			t.Fatal("pending after Reset")
		}
		if _, ok, err := d.DecodeText([]byte(`2["y"]`)); err != nil || !ok {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
	})
}

func TestArgJSON(t *testing.T) {
	d := NewDecoder(Limits{})
	p, ok, err := feed(d, `52-["upload",{"name":"a.png","data":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":0}],"plain"]`, "\x00\x01", "\xff\xfe\xfd")
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	var file struct {
		Name string `json:"name"`
		Data []byte `json:"data"`
	}
	if err := json.Unmarshal(p.ArgJSON(0), &file); err != nil {
		t.Fatalf("ArgJSON(0) = %s: %v", p.ArgJSON(0), err)
	}
	if file.Name != "a.png" || !bytes.Equal(file.Data, []byte{0xff, 0xfe, 0xfd}) {
		t.Fatalf("decoded %+v", file)
	}
	var list [][]byte
	if err := json.Unmarshal(p.ArgJSON(1), &list); err != nil || len(list) != 1 || !bytes.Equal(list[0], []byte{0, 1}) {
		t.Fatalf("ArgJSON(1) = %s, %v: %v", p.ArgJSON(1), list, err)
	}
	if got := p.ArgJSON(2); &got[0] != &p.Args[2][0] {
		t.Fatal("ArgJSON of an argument without placeholders copied it")
	}
}

func TestDecodeAllocations(t *testing.T) {
	text := []byte(`2["message",{"text":"hello","room":"conversation:1"}]`)
	d := NewDecoder(Limits{})
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := d.DecodeText(text); err != nil {
			t.Fatal(err)
		}
	})
	// The event name and the argument slice; the arguments alias text.
	if allocs > 2 {
		t.Fatalf("decoding an event allocates %.0f times, want at most 2", allocs)
	}
}

func TestPacketTypeString(t *testing.T) {
	for i, w := range []string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"} {
		if got := PacketType(i).String(); got != w {
			t.Errorf("PacketType(%d) = %q, want %q", i, got, w)
		}
	}
	if got := PacketType(8).String(); !strings.Contains(got, "8") {
		t.Errorf("PacketType(8) = %q", got)
	}
}
