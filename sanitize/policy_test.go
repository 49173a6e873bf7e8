package sanitize

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/microcosm-cc/bluemonday"
)

func TestPolicyString(t *testing.T) {
	tests := []struct {
		name   string
		p      *Policy
		in     string
		want   string
		absent []string // must not survive, whatever else the output holds
	}{
		{"plain_text_is_unchanged", Strict(), "hello, world", "hello, world", nil},
		{"script_is_removed_with_its_content", Strict(), "hi<script>alert(1)</script>", "hi", []string{"script", "alert"}},
		{"img_onerror_is_removed", Strict(), `<img src=x onerror=alert(1)>cat`, "cat", []string{"onerror", "<img"}},
		{"formatting_is_stripped_by_strict", Strict(), "<b>bold</b> move", "bold move", nil},
		{"ampersand_is_escaped", Strict(), "fish & chips", "fish &amp; chips", nil},
		{"quotes_are_escaped", Strict(), `it's "x"`, "it&#39;s &#34;x&#34;", nil},
		{"existing_entity_is_not_double_escaped", Strict(), "&lt;b&gt; &amp;", "&lt;b&gt; &amp;", nil},
		{"numeric_entity_markup_stays_text", Strict(), "&#60;script&#62;", "&lt;script&gt;", []string{"<script"}},
		{"lone_angle_bracket_is_escaped", Strict(), "1 < 2", "1 &lt; 2", nil},
		{"carriage_return_is_normalized_like_bluemonday", Strict(), "a\r\nb", "a\nb", nil},
		{"comment_is_removed", Strict(), "<!-- x -->ok", "ok", nil},
		{"svg_onload_is_removed", Strict(), `<svg onload=alert(1)>`, "", []string{"onload"}},
		{"ugc_keeps_safe_formatting", UGC(), "<b>bold</b> <i>it</i>", "<b>bold</b> <i>it</i>", nil},
		{"ugc_drops_javascript_href", UGC(), `<a href="javascript:alert(1)">x</a>`, "x", []string{"javascript", "href"}},
		{"ugc_drops_mixed_case_javascript_href", UGC(), `<a href="JaVaScRiPt:alert(1)">x</a>`, "x", []string{"alert"}},
		{"ugc_drops_entity_encoded_javascript_href", UGC(), `<a href="&#106;avascript:alert(1)">x</a>`, "x", []string{"alert"}},
		{"ugc_keeps_https_link_with_nofollow", UGC(), `<a href="https://example.com">x</a>`, `<a href="https://example.com" rel="nofollow">x</a>`, nil},
		{"ugc_drops_event_handler_attribute", UGC(), `<img src="https://e.x/a.png" onerror="alert(1)">`, `<img src="https://e.x/a.png">`, []string{"onerror"}},
		{"ugc_removes_script", UGC(), "<script>alert(1)</script>ok", "ok", []string{"script"}},
		{"ugc_removes_iframe", UGC(), `<iframe src="https://evil.example"></iframe>ok`, "ok", []string{"iframe"}},
		{"ugc_removes_style_attribute", UGC(), `<p style="background:url(javascript:alert(1))">p</p>`, "<p>p</p>", []string{"style"}},
		{"nil_policy_acts_as_strict", nil, "<b>x</b>", "x", nil},
		{"custom_policy_is_used", NewPolicy(bluemonday.NewPolicy().AllowElements("em")), "<em>a</em><b>b</b>", "<em>a</em>b", nil},
		{"nil_custom_policy_is_strict", NewPolicy(nil), "<em>a</em>", "a", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.String(tc.in)
			if got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, bad := range tc.absent {
				if strings.Contains(strings.ToLower(got), bad) {
					t.Errorf("String(%q) = %q still contains %q", tc.in, got, bad)
				}
			}
		})
	}
}

func TestPolicyFastPath(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"ascii_sentence", "see you at 10, ok?"},
		{"unicode_text", "ça va 👋 — ok"},
		{"empty", ""},
		{"long_text", strings.Repeat("lorem ipsum dolor ", 200)},
	}
	for _, tc := range tests {
		t.Run(tc.name+"_is_returned_as_is_without_allocating", func(t *testing.T) {
			for _, p := range []*Policy{Strict(), UGC()} {
				var out string
				allocs := testing.AllocsPerRun(100, func() { out = p.String(tc.in) })
				if allocs != 0 {
					t.Errorf("fast path allocated %v times", allocs)
				}
				if unsafe.StringData(out) != unsafe.StringData(tc.in) || len(out) != len(tc.in) {
					t.Errorf("fast path returned a copy")
				}
			}
		})
	}
}

// FuzzPolicyString checks that the fast path is only an optimization: the
// result is always exactly what bluemonday returns.
func FuzzPolicyString(f *testing.F) {
	for _, s := range []string{"plain", "a\r\nb", "<b>x</b>", "&amp;", "a\x00b", "\xff<", "&#0;", "it's"} {
		f.Add(s)
	}
	strict, ugc := bluemonday.StrictPolicy(), bluemonday.UGCPolicy()
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Strict().String(s), strict.Sanitize(s); got != want {
			t.Fatalf("Strict().String(%q) = %q, bluemonday gives %q", s, got, want)
		}
		if got, want := UGC().String(s), ugc.Sanitize(s); got != want {
			t.Fatalf("UGC().String(%q) = %q, bluemonday gives %q", s, got, want)
		}
	})
}
