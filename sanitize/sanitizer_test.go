package sanitize

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

type Author struct {
	Name string `sanitize:"html"`
	Bio  string `sanitize:"ugc"`
	ID   string // untagged: an id is never rewritten
}

type Attachment struct {
	Caption string `sanitize:"html"`
}

type Audit struct {
	Note string `sanitize:"html"`
}

type Message struct {
	Audit                                       // embedded: promoted fields are walked
	ConversationID string                       // untagged
	Content        string                       `sanitize:"html"`
	Body           string                       `sanitize:"ugc"`
	Subject        *string                      `sanitize:"html"`
	Tags           []string                     `sanitize:"html"`
	Author         Author                       // nested struct
	Editor         *Author                      // pointer to struct
	Attachments    []Attachment                 // slice of structs
	Mentions       []*Author                    // slice of pointers to structs
	Raw            string                       // untagged, holds markup on purpose
	Meta           map[string]string            // untagged, not walked
	Extra          struct{ Count int }          // reaches no string: skipped
	private        string                       // untagged unexported: never touched
	Count          int                          // untagged
	Named          Label                        `sanitize:"html"`
	Lookup         map[string]*Attachment       // maps are not walked
	_              struct{ X string }           // blank: never touched
	Func           func() string                // ignored
	Chan           chan string                  // ignored
	Any            any                          // interfaces are not walked
	Array          [2]Attachment                // arrays are not walked
	Nested         [][]string                   // untagged, not walked
	PtrPtr         **Author                     // not walked
	Iface          interface{ String() string } // not walked
}

type Label string

const xss = `<img src=x onerror=alert(1)>hi<script>alert(2)</script>`

func TestStruct(t *testing.T) {
	subject := `<b>Re:</b> plan`
	m := &Message{
		Audit:          Audit{Note: xss},
		ConversationID: "<c1>",
		Content:        xss,
		Body:           `<b>ok</b> <a href="javascript:alert(1)">link</a>`,
		Subject:        &subject,
		Tags:           []string{"<i>a</i>", "b & c"},
		Author:         Author{Name: "<b>Ana</b>", Bio: `<i>dev</i><script>x</script>`, ID: "<id>"},
		Editor:         &Author{Name: xss, ID: "<id2>"},
		Attachments:    []Attachment{{Caption: xss}, {Caption: "plain"}},
		Mentions:       []*Author{{Name: "<u>bo</u>"}, nil},
		Raw:            xss,
		Meta:           map[string]string{"k": xss},
		private:        xss,
		Named:          Label("<b>n</b>"),
		Lookup:         map[string]*Attachment{"a": {Caption: xss}},
		Array:          [2]Attachment{{Caption: xss}},
		Nested:         [][]string{{xss}},
	}
	if err := New(Options{}).Struct(m); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name, got, want string
	}{
		{"tagged_string_loses_script_and_img", m.Content, "hi"},
		{"ugc_field_keeps_formatting_and_drops_javascript_link", m.Body, "<b>ok</b> link"},
		{"pointer_to_string_is_sanitized", *m.Subject, "Re: plan"},
		{"string_slice_elements_are_sanitized", strings.Join(m.Tags, "|"), "a|b &amp; c"},
		{"embedded_struct_field_is_sanitized", m.Note, "hi"},
		{"nested_struct_field_is_sanitized", m.Author.Name, "Ana"},
		{"nested_ugc_field_keeps_formatting", m.Author.Bio, "<i>dev</i>"},
		{"nested_untagged_field_is_untouched", m.Author.ID, "<id>"},
		{"pointer_to_struct_is_sanitized", m.Editor.Name, "hi"},
		{"pointer_to_struct_untagged_is_untouched", m.Editor.ID, "<id2>"},
		{"struct_slice_elements_are_sanitized", m.Attachments[0].Caption, "hi"},
		{"plain_caption_is_unchanged", m.Attachments[1].Caption, "plain"},
		{"pointer_slice_elements_are_sanitized", m.Mentions[0].Name, "bo"},
		{"named_string_type_is_sanitized", string(m.Named), "n"},
		{"untagged_string_is_untouched", m.Raw, xss},
		{"untagged_id_is_untouched", m.ConversationID, "<c1>"},
		{"map_values_are_untouched", m.Meta["k"], xss},
		{"map_of_struct_pointers_is_untouched", m.Lookup["a"].Caption, xss},
		{"arrays_are_untouched", m.Array[0].Caption, xss},
		{"nested_slices_are_untouched", m.Nested[0][0], xss},
		{"unexported_field_is_untouched", m.private, xss},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
}

func TestStructErrors(t *testing.T) {
	type badValue struct {
		S string `sanitize:"strict"`
	}
	type onInt struct {
		N int `sanitize:"html"`
	}
	type onStruct struct {
		A Attachment `sanitize:"html"`
	}
	type onMap struct {
		M map[string]string `sanitize:"html"`
	}
	type onUnexported struct {
		s string `sanitize:"html"` // unexported on purpose
	}
	type deepBad struct {
		Inner *struct {
			X []int `sanitize:"ugc"`
		}
	}
	var nilMsg *Message
	s := New(Options{})
	tests := []struct {
		name   string
		v      any
		badTag bool
	}{
		{"nil_interface_is_refused", nil, false},
		{"struct_value_is_refused", Message{}, false},
		{"nil_pointer_is_refused", nilMsg, false},
		{"pointer_to_string_is_refused", new(string), false},
		{"pointer_to_pointer_is_refused", &nilMsg, false},
		{"unknown_tag_value_is_refused", &badValue{}, true},
		{"tag_on_int_is_refused", &onInt{}, true},
		{"tag_on_struct_is_refused", &onStruct{}, true},
		{"tag_on_map_is_refused", &onMap{}, true},
		{"tag_on_unexported_field_is_refused", &onUnexported{}, true},
		{"bad_tag_in_a_nested_type_is_refused", &deepBad{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Struct(tc.v)
			if err == nil {
				t.Fatal("Struct returned nil")
			}
			if errors.Is(err, errInvalidTag) != tc.badTag {
				t.Errorf("Struct = %v; tag error = %v, want %v", err, !tc.badTag, tc.badTag)
			}
			if tc.badTag && !s.Needed(reflect.TypeOf(tc.v)) {
				t.Error("Needed is false for a type whose tags are misused, so the error would be skipped")
			}
		})
	}
}

type node struct {
	Text string `sanitize:"html"`
	Next *node
	Kids []node
}

func TestStructCycles(t *testing.T) {
	t.Run("pointer_cycle_terminates_and_sanitizes", func(t *testing.T) {
		a := &node{Text: "<b>a</b>"}
		b := &node{Text: "<b>b</b>", Next: a}
		a.Next = b
		if err := New(Options{}).Struct(a); err != nil {
			t.Fatal(err)
		}
		if a.Text != "a" || b.Text != "b" {
			t.Fatalf("got %q, %q", a.Text, b.Text)
		}
	})
	t.Run("self_cycle_terminates", func(t *testing.T) {
		a := &node{Text: "<i>x</i>"}
		a.Next = a
		if err := New(Options{}).Struct(a); err != nil || a.Text != "x" {
			t.Fatalf("Struct = %v, Text = %q", err, a.Text)
		}
	})
	t.Run("shared_pointer_is_visited_once", func(t *testing.T) {
		shared := &Author{Name: "a&b"}
		m := &Message{Editor: shared, Mentions: []*Author{shared, shared}}
		if err := New(Options{}).Struct(m); err != nil {
			t.Fatal(err)
		}
		if shared.Name != "a&amp;b" {
			t.Fatalf("Name = %q, want it escaped exactly once", shared.Name)
		}
	})
	t.Run("recursive_type_through_slices_is_walked", func(t *testing.T) {
		n := &node{Kids: []node{{Text: "<b>1</b>", Kids: []node{{Text: "<b>2</b>"}}}}}
		if err := New(Options{}).Struct(n); err != nil {
			t.Fatal(err)
		}
		if n.Kids[0].Text != "1" || n.Kids[0].Kids[0].Text != "2" {
			t.Fatalf("got %q, %q", n.Kids[0].Text, n.Kids[0].Kids[0].Text)
		}
	})
	t.Run("nesting_deeper_than_the_bound_is_refused", func(t *testing.T) {
		head := &node{}
		cur := head
		for range maxDepth + 5 {
			cur.Next = &node{Text: "x"}
			cur = cur.Next
		}
		if err := New(Options{}).Struct(head); !errors.Is(err, errTooDeep) {
			t.Fatalf("Struct = %v, want errTooDeep", err)
		}
	})
	t.Run("many_distinct_pointers_are_all_visited", func(t *testing.T) {
		m := &Message{}
		for range 3 * len(walker{}.buf) {
			m.Mentions = append(m.Mentions, &Author{Name: "<b>x</b>"})
		}
		if err := New(Options{}).Struct(m); err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(m.Mentions, func(a *Author) bool { return a.Name != "x" }); i >= 0 {
			t.Fatalf("mention %d = %q", i, m.Mentions[i].Name)
		}
	})
}

func TestNeeded(t *testing.T) {
	type none struct {
		A string
		B *struct{ C string }
	}
	type onlyDeep struct {
		L []*struct {
			M struct {
				S string `sanitize:"html"`
			}
		}
	}
	tests := []struct {
		name string
		t    reflect.Type
		want bool
	}{
		{"struct_with_tagged_field_is_needed", reflect.TypeFor[Author](), true},
		{"pointer_to_such_struct_is_needed", reflect.TypeFor[*Author](), true},
		{"struct_with_only_nested_tags_is_needed", reflect.TypeFor[onlyDeep](), true},
		{"recursive_struct_is_needed", reflect.TypeFor[node](), true},
		{"struct_without_tags_is_not_needed", reflect.TypeFor[none](), false},
		{"non_struct_is_not_needed", reflect.TypeFor[string](), false},
		{"slice_of_structs_is_not_needed", reflect.TypeFor[[]Author](), false},
		{"nil_type_is_not_needed", nil, false},
	}
	s := New(Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Needed(tc.t); got != tc.want {
				t.Errorf("Needed(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	t.Run("default_policy_applies_to_html_fields", func(t *testing.T) {
		a := &Author{Name: "<b>x</b>", Bio: "<b>y</b>"}
		if err := New(Options{Default: UGC()}).Struct(a); err != nil {
			t.Fatal(err)
		}
		if a.Name != "<b>x</b>" || a.Bio != "<b>y</b>" {
			t.Fatalf("got %q, %q", a.Name, a.Bio)
		}
	})
	t.Run("zero_sanitizer_is_strict", func(t *testing.T) {
		var s Sanitizer
		a := &Author{Name: "<b>x</b>"}
		if err := s.Struct(a); err != nil || a.Name != "x" {
			t.Fatalf("Struct = %v, Name = %q", err, a.Name)
		}
	})
	t.Run("untagged_struct_is_left_alone", func(t *testing.T) {
		v := &struct{ S string }{S: xss}
		if err := New(Options{}).Struct(v); err != nil || v.S != xss {
			t.Fatalf("Struct = %v, S = %q", err, v.S)
		}
	})
}

// TestStructConcurrent has many goroutines plan and sanitize the same types
// at once, for the race detector.
func TestStructConcurrent(t *testing.T) {
	s := New(Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				m := &Message{Content: xss, Mentions: []*Author{{Name: xss}}}
				if err := s.Struct(m); err != nil || m.Content != "hi" || m.Mentions[0].Name != "hi" {
					t.Errorf("Struct = %v, %q, %q", err, m.Content, m.Mentions[0].Name)
					return
				}
				_ = s.Needed(reflect.TypeFor[node]())
			}
		})
	}
	wg.Wait()
}

func TestStructPlainTextDoesNotAllocate(t *testing.T) {
	s := New(Options{})
	subject := "plans"
	m := &Message{
		Content: "see you at 10", Subject: &subject, Tags: []string{"a", "b"},
		Editor: &Author{Name: "Ana"}, Mentions: []*Author{{Name: "Bo"}},
		Attachments: []Attachment{{Caption: "map"}},
	}
	if err := s.Struct(m); err != nil { // builds the plan outside the measurement
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = s.Struct(m) }); allocs != 0 {
		t.Errorf("Struct on plain text allocated %v times per call", allocs)
	}
}

type inner struct {
	S string `sanitize:"html"`
}

type innerPtr struct {
	P string `sanitize:"html"`
}

// TestStructEmbeddedUnexported checks that promoted fields of embedded
// unexported types are reached (encoding/json fills them too), and that an
// unexported non-embedded struct is left alone rather than panicking.
func TestStructEmbeddedUnexported(t *testing.T) {
	type outer struct {
		inner
		*innerPtr
		hidden Attachment
	}
	v := &outer{inner: inner{S: "<b>s</b>"}, innerPtr: &innerPtr{P: "<b>p</b>"}, hidden: Attachment{Caption: "<b>h</b>"}}
	if err := New(Options{}).Struct(v); err != nil {
		t.Fatal(err)
	}
	if v.S != "s" || v.P != "p" || v.hidden.Caption != "<b>h</b>" {
		t.Fatalf("got %q, %q, %q", v.S, v.P, v.hidden.Caption)
	}
	if err := New(Options{}).Struct(&outer{}); err != nil {
		t.Fatalf("nil embedded pointer: %v", err)
	}
}
