package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		name  string
		frame string
		want  Inbound
		err   bool
	}{
		{"event_with_id_and_data", `{"type":"event","id":7,"event":"message:send","data":{"a":1}}`,
			Inbound{Kind: KindEvent, ID: 7, HasID: true, Event: "message:send", Data: []byte(`{"a":1}`)}, false},
		{"event_without_data", `{"type":"event","event":"typing:start"}`, Inbound{Kind: KindEvent, Event: "typing:start"}, false},
		{"null_data_is_absent", `{"type":"event","event":"x","data":null}`, Inbound{Kind: KindEvent, Event: "x"}, false},
		{"id_zero_is_an_id", `{"type":"leave","id":0,"room":"r"}`, Inbound{Kind: KindLeave, HasID: true, Room: "r"}, false},
		{"join", `{"type":"join","room":"conversation:1"}`, Inbound{Kind: KindJoin, Room: "conversation:1"}, false},
		{"auth", `{"type":"auth","data":{"token":"abc"}}`, Inbound{Kind: KindAuth, Token: "abc", Data: []byte(`{"token":"abc"}`)}, false},
		{"unknown_field_is_refused", `{"type":"event","event":"x","extra":1}`, Inbound{}, true},
		{"trailing_data_is_refused", `{"type":"event","event":"x"} {}`, Inbound{}, true},
		{"array_is_refused", `[1,2]`, Inbound{}, true},
		{"not_json_is_refused", `hello`, Inbound{}, true},
		{"missing_type_is_refused", `{"event":"x"}`, Inbound{}, true},
		{"unknown_type_is_refused", `{"type":"ack","id":1}`, Inbound{HasID: true, ID: 1}, true},
		{"negative_id_is_refused", `{"type":"event","id":-1,"event":"x"}`, Inbound{}, true},
		{"fractional_id_is_refused", `{"type":"event","id":1.5,"event":"x"}`, Inbound{}, true},
		{"string_id_is_refused", `{"type":"event","id":"1","event":"x"}`, Inbound{}, true},
		{"id_beyond_2^53_is_refused", `{"type":"event","id":9007199254740992,"event":"x"}`, Inbound{}, true},
		{"event_name_with_space_is_refused", `{"type":"event","event":"a b"}`, Inbound{}, true},
		{"event_name_too_long_is_refused", `{"type":"event","event":"` + strings.Repeat("a", 65) + `"}`, Inbound{}, true},
		{"room_on_event_is_refused", `{"type":"event","event":"x","room":"r"}`, Inbound{}, true},
		{"join_without_room_is_refused", `{"type":"join"}`, Inbound{}, true},
		{"join_with_data_is_refused", `{"type":"join","room":"r","data":{}}`, Inbound{}, true},
		{"join_with_since", `{"type":"join","id":4,"room":"r","data":{"since":{"offset":12,"epoch":"e1"}}}`,
			Inbound{Kind: KindJoin, ID: 4, HasID: true, Room: "r", Since: &Position{Offset: 12, Epoch: "e1"},
				Data: []byte(`{"since":{"offset":12,"epoch":"e1"}}`)}, false},
		{"join_with_since_keys_in_either_order", `{"type":"join","room":"r","data":{ "since" : { "epoch" : "e" , "offset" : 0 } }}`,
			Inbound{Kind: KindJoin, Room: "r", Since: &Position{Epoch: "e"}, Data: []byte(`{ "since" : { "epoch" : "e" , "offset" : 0 } }`)}, false},
		{"join_with_null_data_has_no_since", `{"type":"join","room":"r","data":null}`, Inbound{Kind: KindJoin, Room: "r"}, false},
		{"since_without_epoch_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":1}}}`, Inbound{}, true},
		{"since_without_offset_is_refused", `{"type":"join","room":"r","data":{"since":{"epoch":"e"}}}`, Inbound{}, true},
		{"since_with_a_negative_offset_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":-1,"epoch":"e"}}}`, Inbound{}, true},
		{"since_with_a_fractional_offset_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":1.5,"epoch":"e"}}}`, Inbound{}, true},
		{"since_offset_beyond_2_53_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":9007199254740992,"epoch":"e"}}}`, Inbound{}, true},
		{"since_with_a_numeric_epoch_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":1,"epoch":1}}}`, Inbound{}, true},
		{"since_with_a_long_epoch_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":1,"epoch":"` + strings.Repeat("e", MaxEpochLen+1) + `"}}}`, Inbound{}, true},
		{"since_with_a_duplicate_key_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":1,"offset":2,"epoch":"e"}}}`, Inbound{}, true},
		{"since_with_an_unknown_key_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":1,"epoch":"e","x":1}}}`, Inbound{}, true},
		{"join_data_with_another_key_is_refused", `{"type":"join","room":"r","data":{"since":{"offset":1,"epoch":"e"},"x":1}}`, Inbound{}, true},
		{"since_key_in_another_case_is_refused", `{"type":"join","room":"r","data":{"Since":{"offset":1,"epoch":"e"}}}`, Inbound{}, true},
		{"leave_with_since_is_refused", `{"type":"leave","room":"r","data":{"since":{"offset":1,"epoch":"e"}}}`, Inbound{}, true},
		{"auth_without_token_is_refused", `{"type":"auth","data":{}}`, Inbound{}, true},
		{"auth_with_extra_field_is_refused", `{"type":"auth","data":{"token":"a","x":1}}`, Inbound{}, true},
		{"id_survives_a_refusal", `{"type":"event","id":5,"event":"a b"}`, Inbound{ID: 5, HasID: true}, true},

		// Strict envelope: exact keys, each at most once, one object.
		{"key_in_another_case_is_refused", `{"Type":"event","event":"x"}`, Inbound{}, true},
		{"upper_case_event_key_is_refused", `{"type":"event","EVENT":"x"}`, Inbound{}, true},
		{"mixed_case_room_key_is_refused", `{"type":"join","rOOm":"r"}`, Inbound{}, true},
		{"escaped_key_is_refused", `{"\u0074ype":"event","event":"x"}`, Inbound{}, true},
		{"duplicate_type_is_refused", `{"type":"event","type":"join","event":"x"}`, Inbound{}, true},
		{"duplicate_event_is_refused", `{"type":"event","event":"x","event":"y"}`, Inbound{}, true},
		{"duplicate_room_is_refused", `{"type":"join","room":"a","room":"b"}`, Inbound{}, true},
		{"duplicate_id_is_refused", `{"type":"event","id":1,"event":"x","id":2}`, Inbound{}, true},
		{"duplicate_data_is_refused", `{"type":"event","event":"x","data":1,"data":2}`, Inbound{}, true},
		{"duplicate_null_is_still_a_duplicate", `{"type":"event","event":"x","room":null,"room":"r"}`, Inbound{}, true},
		{"trailing_garbage_is_refused", `{"type":"event","event":"x"}x`, Inbound{}, true},
		{"second_object_is_refused", `{"type":"event","event":"x"}{"type":"event","event":"y"}`, Inbound{}, true},
		{"surrounding_whitespace_is_accepted", " \n\t{\"type\":\"event\",\"event\":\"x\"} \r\n", Inbound{Kind: KindEvent, Event: "x"}, false},
		{"whitespace_around_data_is_not_kept", `{"type":"event","event":"x","data" : { "a" : [1, 2] } }`, Inbound{Kind: KindEvent, Event: "x", Data: []byte(`{ "a" : [1, 2] }`)}, false},
		{"empty_object_is_refused", `{}`, Inbound{}, true},
		{"unterminated_object_is_refused", `{"type":"event","event":"x"`, Inbound{}, true},
		{"trailing_comma_is_refused", `{"type":"event","event":"x",}`, Inbound{}, true},
		{"missing_colon_is_refused", `{"type" "event"}`, Inbound{}, true},
		{"single_quotes_are_refused", `{'type':'event','event':'x'}`, Inbound{}, true},
		{"raw_control_character_in_a_string_is_refused", "{\"type\":\"event\",\"event\":\"x\ty\"}", Inbound{}, true},
		{"invalid_escape_is_refused", `{"type":"event","event":"\x41"}`, Inbound{}, true},
		{"escaped_event_name_is_checked_once_decoded", `{"type":"event","event":"a\u002db\/c"}`, Inbound{}, true},
		{"escaped_valid_event_name_is_accepted", `{"type":"event","event":"a\u002Db"}`, Inbound{Kind: KindEvent, Event: "a-b"}, false},
		{"escaped_type_is_decoded", `{"type":"\u0065vent","event":"x"}`, Inbound{Kind: KindEvent, Event: "x"}, false},
		{"escaped_room_is_decoded", `{"type":"join","room":"caf\u00e9"}`, Inbound{Kind: KindJoin, Room: "café"}, false},
		{"surrogate_pair_is_decoded", `{"type":"join","room":"\ud83d\ude00"}`, Inbound{Kind: KindJoin, Room: "\U0001F600"}, false},
		{"lone_surrogate_becomes_replacement", `{"type":"join","room":"\ud83dx"}`, Inbound{Kind: KindJoin, Room: "\uFFFDx"}, false},
		{"null_type_is_refused", `{"type":null,"event":"x"}`, Inbound{}, true},
		{"numeric_type_is_refused", `{"type":1,"event":"x"}`, Inbound{}, true},
		{"null_id_is_refused", `{"type":"event","id":null,"event":"x"}`, Inbound{}, true},
		{"id_with_leading_zero_is_refused", `{"type":"event","id":01,"event":"x"}`, Inbound{}, true},
		{"id_with_exponent_is_refused", `{"type":"event","id":1e3,"event":"x"}`, Inbound{}, true},
		{"negative_zero_id_is_refused", `{"type":"event","id":-0,"event":"x"}`, Inbound{}, true},
		{"largest_id_is_accepted", `{"type":"event","id":9007199254740991,"event":"x"}`, Inbound{Kind: KindEvent, ID: MaxID, HasID: true, Event: "x"}, false},
		{"invalid_data_is_refused", `{"type":"event","event":"x","data":{"a":}}`, Inbound{}, true},
		{"data_with_a_bad_number_is_refused", `{"type":"event","event":"x","data":[1.]}`, Inbound{}, true},
		{"data_with_a_bare_word_is_refused", `{"type":"event","event":"x","data":nul}`, Inbound{}, true},
		{"data_keys_are_the_handler_s_business", `{"type":"event","event":"x","data":{"A":1,"A":2}}`, Inbound{Kind: KindEvent, Event: "x", Data: []byte(`{"A":1,"A":2}`)}, false},
		{"data_nested_to_the_limit_is_accepted", `{"type":"event","event":"x","data":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
			Inbound{Kind: KindEvent, Event: "x", Data: []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))}, false},
		{"data_nested_beyond_the_limit_is_refused", `{"type":"event","event":"x","data":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, Inbound{}, true},
		{"auth_token_key_in_another_case_is_refused", `{"type":"auth","data":{"Token":"a"}}`, Inbound{}, true},
		{"auth_duplicate_token_is_refused", `{"type":"auth","data":{"token":"a","token":"b"}}`, Inbound{}, true},
		{"auth_token_of_the_wrong_type_is_refused", `{"type":"auth","data":{"token":7}}`, Inbound{}, true},
		{"auth_data_that_is_not_an_object_is_refused", `{"type":"auth","data":"a.b.c"}`, Inbound{}, true},
		{"auth_with_spaces_in_data", `{"type":"auth","data": { "token" : "a.b" } }`, Inbound{Kind: KindAuth, Token: "a.b", Data: []byte(`{ "token" : "a.b" }`)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Native{}.DecodeText([]byte(tc.frame))
			if tc.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				if got.ID != tc.want.ID || got.HasID != tc.want.HasID {
					t.Fatalf("id = %d/%v, want %d/%v", got.ID, got.HasID, tc.want.ID, tc.want.HasID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tc.want.Kind || got.ID != tc.want.ID || got.HasID != tc.want.HasID ||
				got.Event != tc.want.Event || got.Room != tc.want.Room || got.Token != tc.want.Token ||
				string(got.Data) != string(tc.want.Data) || (got.Since == nil) != (tc.want.Since == nil) ||
				(got.Since != nil && *got.Since != *tc.want.Since) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestEncodeProducesValidJSON(t *testing.T) {
	c := Native{}
	frames := map[string][]byte{
		"event":   c.AppendEvent(nil, "message:new", "conversation:1", []byte(`{"a":"b"}`)),
		"no_data": c.AppendEvent(nil, "x", "", nil),
		"ack":     c.AppendAck(nil, 9, []byte(`[1]`)),
		"error":   c.AppendError(nil, 3, true, "FORBIDDEN", "quote \" backslash \\ <tag> & \u2028 \x01 \xff"),
		"welcome": c.AppendWelcome(nil, Welcome{ConnID: "c", UserID: "u\"", ExpiresAt: 5, HeartbeatMS: 25000}),
		"welcome_with_positions": c.AppendWelcome(nil, Welcome{ConnID: "c", UserID: "u", Positions: []RoomPosition{
			{Room: "user:u", Position: Position{Offset: 3, Epoch: "e\"<"}}, {Room: "tenant:t", Position: Position{Epoch: "f"}}}}),
		"event_at": c.AppendEventAt(nil, "x", "tenant:t", Position{Offset: 9, Epoch: "e"}, []byte(`1`)),
		"bye":      c.AppendBye(nil, "shutdown"),
	}
	for name, f := range frames {
		t.Run(name, func(t *testing.T) {
			var v map[string]any
			if err := json.Unmarshal(f, &v); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if strings.ContainsAny(string(f), "<>&\u2028") {
				t.Fatalf("unescaped HTML-significant character in %s", f)
			}
		})
	}
	var w struct {
		Data struct {
			Positions map[string]struct {
				Offset uint64
				Epoch  string
			}
		}
	}
	if err := json.Unmarshal(frames["welcome_with_positions"], &w); err != nil || len(w.Data.Positions) != 2 ||
		w.Data.Positions["user:u"].Offset != 3 || w.Data.Positions["user:u"].Epoch != "e\"<" || w.Data.Positions["tenant:t"].Epoch != "f" {
		t.Fatalf("welcome positions = %+v (%v) from %s", w.Data.Positions, err, frames["welcome_with_positions"])
	}
	var e struct{ Message string }
	_ = json.Unmarshal(frames["error"], &e)
	if e.Message != "quote \" backslash \\ <tag> & \u2028 \x01 \ufffd" {
		t.Fatalf("message round-trip = %q", e.Message)
	}
}

// FuzzDecode: any frame decodes or fails with ErrInvalid, never panics, and
// what it accepts satisfies the envelope's invariants.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"event","id":1,"event":"a","data":{"x":[1,2,{"y":null}]}}`,
		`{"type":"join","room":"conversation:1"}`,
		`{"type":"auth","data":{"token":"a.b.c"}}`,
		`{"type":"leave","id":0,"room":"r"}`,
		`[]`, `null`, `{"type":"event","event":"x"} x`, "\xff",
		`{"Type":"event","event":"x"}`, `{"type":"event","event":"x","event":"y"}`,
		`{"type":"join","room":"\ud83d\ude00"}`, `{"type":"event","event":"a\u002Db","data":[1e5,-0.5,"\n",true,null]}`,
		`{"type":"join","id":2,"room":"r","data":{"since":{"offset":12,"epoch":"e\u0031"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		in, err := Native{}.DecodeText(frame)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		sameAsEncodingJSON(t, frame, in)
		if in.HasID && in.ID > MaxID {
			t.Fatalf("id %d beyond 2^53-1", in.ID)
		}
		switch in.Kind {
		case KindEvent:
			if !ValidEventName(in.Event) {
				t.Fatalf("accepted event name %q", in.Event)
			}
		case KindJoin, KindLeave:
			if in.Room == "" || len(in.Room) > MaxRoomLen || !utf8.ValidString(in.Room) {
				t.Fatalf("accepted room %q", in.Room)
			}
			sinceAsEncodingJSON(t, frame, in)
		case KindAuth:
			if in.Token == "" || len(in.Token) > MaxTokenLen {
				t.Fatalf("accepted token of %d bytes", len(in.Token))
			}
		default:
			t.Fatalf("accepted kind %d", in.Kind)
		}
		if in.Data != nil && !json.Valid(in.Data) {
			t.Fatalf("accepted invalid data %q", in.Data)
		}
	})
}

// sameAsEncodingJSON checks an accepted frame against encoding/json: it is
// valid JSON, an object whose keys are envelope keys spelled exactly, each
// once, and the values read the same.
func sameAsEncodingJSON(t *testing.T, frame []byte, in Inbound) {
	t.Helper()
	if !json.Valid(frame) {
		t.Fatalf("accepted invalid JSON %q", frame)
	}
	dec := json.NewDecoder(bytes.NewReader(frame))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '{' {
		t.Fatalf("accepted %q, which is not an object", frame)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			t.Fatalf("key of %q: %v", frame, err)
		}
		if seen[key] || !slices.Contains([]string{"type", "id", "event", "room", "data"}, key) {
			t.Fatalf("accepted %q with key %q (duplicate: %v)", frame, key, seen[key])
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var str string
		switch key {
		case "type":
			if err := json.Unmarshal(v, &str); err != nil || str != in.Kind.String() {
				t.Fatalf("type of %q: accepted as %s, encoding/json reads %q (%v)", frame, in.Kind, str, err)
			}
		case "event", "room":
			if string(v) != "null" {
				if err := json.Unmarshal(v, &str); err != nil {
					t.Fatal(err)
				}
			}
			if got := map[string]string{"event": in.Event, "room": in.Room}[key]; got != str {
				t.Fatalf("%s of %q = %q, encoding/json reads %q", key, frame, got, str)
			}
		case "data":
			if in.Data != nil && !bytes.Equal(bytes.TrimSpace(v), in.Data) {
				t.Fatalf("data of %q = %q, encoding/json reads %q", frame, in.Data, v)
			}
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := []byte(`{"type":"event","id":42,"event":"message:send","data":{"conversationId":"7d444840-9dc0-11d1-b245-5ffdce74fad2","content":"hello there"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (Native{}).DecodeText(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(`{"content":"hello there","senderId":"alice"}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = Native{}.AppendEvent(buf[:0], "message:new", "conversation:1", data)
	}
}

// sinceAsEncodingJSON checks a join's since against encoding/json: present
// exactly when data is, on a join only, and read the same.
func sinceAsEncodingJSON(t *testing.T, frame []byte, in Inbound) {
	t.Helper()
	if in.Since == nil {
		if in.Data != nil {
			t.Fatalf("accepted %q: data without since", frame)
		}
		return
	}
	if in.Kind != KindJoin {
		t.Fatalf("accepted %q: since on a %s", frame, in.Kind)
	}
	var d struct {
		Since struct {
			Offset *uint64
			Epoch  *string
		}
	}
	if err := json.Unmarshal(in.Data, &d); err != nil || d.Since.Offset == nil || d.Since.Epoch == nil ||
		*d.Since.Offset != in.Since.Offset || *d.Since.Epoch != in.Since.Epoch || in.Since.Offset > MaxID || len(in.Since.Epoch) > MaxEpochLen {
		t.Fatalf("since of %q = %+v; encoding/json reads %+v (%v)", frame, *in.Since, d, err)
	}
}
