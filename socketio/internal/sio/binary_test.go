package sio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type blob []byte

type inner struct {
	Thumb []byte `json:"thumb"`
}

type hidden struct {
	Secret []byte
}

type file struct {
	Name    string            `json:"name"`
	Data    []byte            `json:"data"`
	Skip    []byte            `json:"-"`
	Maybe   []byte            `json:"maybe,omitempty"`
	Empty   []byte            `json:"empty"`
	Nil     []byte            `json:"nil"`
	Named   blob              `json:"named"`
	Raw     json.RawMessage   `json:"raw"`
	Parts   [][]byte          `json:"parts,omitempty"`
	Ptr     *inner            `json:"ptr,omitempty"`
	Meta    map[string]any    `json:"meta,omitempty"`
	Fixed   [2]byte           `json:"fixed"`
	When    time.Time         `json:"when"`
	ByKey   map[string][]byte `json:"byKey,omitempty"`
	private []byte
	inner
	hidden `json:"-"`
}

// deconstruct marshals args as NewEvent does and returns the arguments' JSON
// and the attachments.
func deconstruct(t *testing.T, args ...any) (string, [][]byte) {
	t.Helper()
	p, err := NewEvent("/", "e", args...)
	if err != nil {
		t.Fatal(err)
	}
	text, err := p.AppendText(nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(text), p.Attachments
}

func TestNewEventDeconstructsBinary(t *testing.T) {
	cases := []struct {
		name     string
		args     []any
		wantText string
		wantAtts []string
	}{
		{"byte_slice_argument", []any{[]byte{1, 2}}, `451-["e",` + ph0 + `]`, []string{"\x01\x02"}},
		{"byte_slices_in_two_arguments_are_numbered_across", []any{[]byte("a"), "s", []byte("b")},
			`452-["e",` + ph0 + `,"s",` + ph1 + `]`, []string{"a", "b"}},
		{"map_values_in_key_order", []any{map[string]any{"z": []byte("z"), "a": []byte("a")}},
			`452-["e",{"a":` + ph0 + `,"z":` + ph1 + `}]`, []string{"a", "z"}},
		{"nested_any_slices", []any{[]any{1, []any{[]byte("x")}}}, `451-["e",[1,[` + ph0 + `]]]`, []string{"x"}},
		{"pointer_to_bytes", []any{&[]byte{7}}, `451-["e",` + ph0 + `]`, []string{"\x07"}},
		{"no_binary_is_a_plain_event", []any{map[string]any{"a": "b"}, []int{1}}, `42["e",{"a":"b"},[1]]`, nil},
		{"empty_bytes_stay_an_empty_string", []any{[]byte{}}, `42["e",""]`, nil},
		{"nil_bytes_stay_null", []any{[]byte(nil)}, `42["e",null]`, nil},
		{"raw_message_is_json_not_binary", []any{json.RawMessage(`[1]`)}, `42["e",[1]]`, nil},
		{"byte_array_is_a_number_array", []any{[3]byte{1, 2, 3}}, `42["e",[1,2,3]]`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text, atts := deconstruct(t, tc.args...)
			if text != tc.wantText {
				t.Fatalf("got  %s\nwant %s", text, tc.wantText)
			}
			if len(atts) != len(tc.wantAtts) {
				t.Fatalf("got %d attachments, want %d", len(atts), len(tc.wantAtts))
			}
			for i := range atts {
				if string(atts[i]) != tc.wantAtts[i] {
					t.Fatalf("attachment %d = %q, want %q", i, atts[i], tc.wantAtts[i])
				}
			}
		})
	}
}

// richFile exercises encoding/json's rules: tags, "-", omitempty, named
// byte types, RawMessage, nested pointers, maps, byte arrays, marshalers,
// unexported fields and promoted fields of embedded structs.
func richFile() file {
	return file{
		Name: "a.png", Data: []byte("D"), Skip: []byte("S"), Empty: []byte{}, Named: blob("N"),
		Raw: json.RawMessage(`{"k":1}`), Parts: [][]byte{[]byte("P0"), nil}, Ptr: &inner{Thumb: []byte("T")},
		Meta: map[string]any{"m": []byte("M")}, Fixed: [2]byte{1, 2}, When: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ByKey: map[string][]byte{"k": []byte("K")}, private: []byte("x"), inner: inner{Thumb: []byte("E")},
		hidden: hidden{Secret: []byte("H")},
	}
}

// TestNewEventStructFollowsEncodingJSON compares a struct's deconstruction
// with encoding/json's own output once the placeholders are put back as
// base64: it must change nothing but the []byte it turns into attachments,
// numbered in the order encoding/json writes them.
func TestNewEventStructFollowsEncodingJSON(t *testing.T) {
	text, atts := deconstruct(t, richFile())
	want := []string{"D", "N", "P0", "T", "M", "K", "E"}
	if len(atts) != len(want) {
		t.Fatalf("got %d attachments %q, want %q", len(atts), atts, want)
	}
	for i := range want {
		if string(atts[i]) != want[i] {
			t.Fatalf("attachment %d = %q, want %q", i, atts[i], want[i])
		}
	}
	bins := make([]string, len(atts))
	for i, a := range atts {
		bins[i] = string(a)
	}
	p, ok, err := feed(NewDecoder(Limits{}), text[1:], bins...)
	if err != nil || !ok {
		t.Fatalf("decoding %s: ok=%v err=%v", text, ok, err)
	}
	var got, orig map[string]any
	if err := json.Unmarshal(p.ArgJSON(0), &got); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(richFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &orig); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, orig) {
		t.Fatalf("reassembled  %v\nencoding/json %v", got, orig)
	}
}

func TestNewEventLeavesTheValueAlone(t *testing.T) {
	data := []byte("payload")
	v := &file{Data: data, Meta: map[string]any{"b": []byte("m")}}
	if _, err := NewEvent("/", "e", v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Data, []byte("payload")) || string(v.Meta["b"].([]byte)) != "m" {
		t.Fatalf("the argument was modified: %+v", v)
	}
	p, _ := NewEvent("/", "e", data)
	data[0] = 'X'
	if string(p.Attachments[0]) != "payload" {
		t.Fatal("the attachment aliases the caller's slice, which may change before it is sent")
	}
}

type node struct {
	Next *node `json:"next"`
	Data []byte
}

func TestNewEventRefusesACycle(t *testing.T) {
	n := &node{Data: []byte{1}}
	n.Next = n
	if _, err := NewEvent("/", "e", n); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func TestNewEventBoundsAttachments(t *testing.T) {
	many := make([]any, maxAttachmentsCap+1)
	for i := range many {
		many[i] = []byte{byte(i)}
	}
	if _, err := NewEvent("/", "e", many); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if _, err := NewEvent("/", "e", many[:maxAttachmentsCap]); err != nil {
		t.Fatal(err)
	}
}

// A string that looks like a marker cannot become an attachment: markers
// carry a fresh random nonce each call.
func TestNewEventMarkerCannotBeForged(t *testing.T) {
	forged := strings.Repeat("A", 22) + "=="
	text, atts := deconstruct(t, map[string]any{"s": forged, "b": []byte{1}})
	if len(atts) != 1 || !strings.Contains(text, `"s":"`+forged+`"`) {
		t.Fatalf("got %s with %d attachments", text, len(atts))
	}
}
