package guard_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/guard"
)

var testAllowed = []string{
	"https://app.example.com",
	"http://127.0.0.1:8080",
	"https://*.example.com",
	"https://*.staging.example.org:8443",
	"http://[::1]:3000",
}

func newTestOrigins(t testing.TB, opts guard.OriginOptions) *guard.Origins {
	t.Helper()
	if opts.Allowed == nil {
		opts.Allowed = testAllowed
	}
	o, err := guard.NewOrigins(opts)
	if err != nil {
		t.Fatalf("NewOrigins: %v", err)
	}
	return o
}

func TestNewOrigins(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
	}{
		{"empty_list_is_an_error", nil},
		{"bare_star_is_an_error", []string{"*"}},
		{"null_is_an_error", []string{"null"}},
		{"missing_scheme_is_an_error", []string{"app.example.com"}},
		{"schemeless_pattern_is_an_error", []string{"*.example.com"}},
		{"non_http_scheme_is_an_error", []string{"ftp://example.com"}},
		{"path_is_an_error", []string{"https://app.example.com/chat"}},
		{"trailing_slash_is_an_error", []string{"https://app.example.com/"}},
		{"query_is_an_error", []string{"https://app.example.com?x=1"}},
		{"fragment_is_an_error", []string{"https://app.example.com#x"}},
		{"userinfo_is_an_error", []string{"https://user@app.example.com"}},
		{"glob_suffix_is_an_error", []string{"https://example.com*"}},
		{"partial_label_star_is_an_error", []string{"https://app*.example.com"}},
		{"inner_star_is_an_error", []string{"https://app.*.example.com"}},
		{"double_star_is_an_error", []string{"https://*.*.example.com"}},
		{"star_only_host_is_an_error", []string{"https://*"}},
		{"single_label_pattern_is_an_error", []string{"https://*.com"}},
		{"ip_pattern_is_an_error", []string{"https://*.10.0.0.1"}},
		{"port_zero_is_an_error", []string{"https://app.example.com:0"}},
		{"port_out_of_range_is_an_error", []string{"https://app.example.com:65536"}},
		{"empty_port_is_an_error", []string{"https://app.example.com:"}},
		{"ipv6_zone_is_an_error", []string{"http://[fe80::1%25eth0]"}},
		{"one_bad_entry_fails_the_list", []string{"https://ok.example.com", "https://bad.example.com/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := guard.NewOrigins(guard.OriginOptions{Allowed: tt.allowed})
			if err == nil || o != nil {
				t.Fatalf("NewOrigins(%q) = %v, %v; want nil and an error", tt.allowed, o, err)
			}
		})
	}
}

var originCases = []struct {
	name   string
	origin string
	want   bool
}{
	{"exact_origin_is_allowed", "https://app.example.com", true},
	{"exact_origin_is_case_insensitive", "HTTPS://App.Example.COM", true},
	{"explicit_default_port_is_normalised", "https://app.example.com:443", true},
	{"ip_origin_with_port_is_allowed", "http://127.0.0.1:8080", true},
	{"ipv6_origin_is_allowed", "http://[::1]:3000", true},
	{"ipv6_origin_is_canonicalised", "http://[0:0::1]:3000", true},
	{"subdomain_pattern_admits_one_label", "https://chat.example.com", true},
	{"subdomain_pattern_admits_several_labels", "https://a.b.example.com", true},
	{"subdomain_pattern_with_port_admits_same_port", "https://x.staging.example.org:8443", true},
	{"lookalike_suffix_is_refused", "https://example.com.evil.net", false},
	{"lookalike_prefix_is_refused", "https://evilexample.com", false},
	{"lookalike_subdomain_suffix_is_refused", "https://app.example.com.evil.net", false},
	{"userinfo_trick_is_refused", "https://app.example.com@evil.net", false},
	{"backslash_trick_is_refused", `https://evil.net\@app.example.com`, false},
	{"percent_encoding_is_refused", "https://app%2eexample.com", false},
	{"scheme_mismatch_is_refused", "http://app.example.com", false},
	{"pattern_scheme_mismatch_is_refused", "http://chat.example.com", false},
	{"websocket_scheme_is_refused", "wss://app.example.com", false},
	{"port_mismatch_is_refused", "https://app.example.com:8443", false},
	{"ip_port_mismatch_is_refused", "http://127.0.0.1:8081", false},
	{"ip_default_port_is_refused", "http://127.0.0.1", false},
	{"port_with_leading_zero_is_refused", "https://app.example.com:0443", false},
	{"pattern_port_mismatch_is_refused", "https://x.staging.example.org", false},
	{"pattern_does_not_admit_apex", "https://example.com", false},
	{"pattern_does_not_admit_empty_label", "https://.example.com", false},
	{"double_dot_is_refused", "https://a..example.com", false},
	{"trailing_dot_is_refused", "https://app.example.com.", false},
	{"path_is_refused", "https://app.example.com/", false},
	{"query_is_refused", "https://app.example.com?", false},
	{"null_is_refused", "null", false},
	{"empty_is_refused", "", false},
	{"leading_space_is_refused", " https://app.example.com", false},
	{"unicode_host_is_refused", "https://аpp.example.com", false},
	{"overlong_is_refused", "https://" + strings.Repeat("a.", 200) + "example.com", false},
	{"other_ipv6_is_refused", "http://[::2]:3000", false},
	{"unterminated_ipv6_is_refused", "http://[::1:3000", false},
}

func TestOrigins(t *testing.T) {
	o := newTestOrigins(t, guard.OriginOptions{})
	for _, tt := range originCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := o.Allow(tt.origin); got != tt.want {
				t.Errorf("Allow(%q) = %v, want %v", tt.origin, got, tt.want)
			}
		})
	}
}

func TestOriginsCheck(t *testing.T) {
	tests := []struct {
		name         string
		allowMissing bool
		origins      []string // nil: no header
		want         bool
	}{
		{"missing_origin_is_refused_by_default", false, nil, false},
		{"missing_origin_is_allowed_when_configured", true, nil, true},
		{"empty_origin_is_refused_even_when_missing_is_allowed", true, []string{""}, false},
		{"allowed_origin_passes", false, []string{"https://app.example.com"}, true},
		{"several_origin_headers_are_refused", false, []string{"https://app.example.com", "https://app.example.com"}, false},
		{"null_is_refused_even_when_missing_is_allowed", true, []string{"null"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigins(t, guard.OriginOptions{AllowMissing: tt.allowMissing})
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			for _, v := range tt.origins {
				r.Header.Add("Origin", v)
			}
			if got := o.Check(r); got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOriginsMiddleware(t *testing.T) {
	t.Run("refusal_is_403_json_before_next", func(t *testing.T) {
		logger, logs := newTestLogger()
		o := newTestOrigins(t, guard.OriginOptions{Logger: logger})
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Error("next ran for a refused origin")
		})
		r := httptest.NewRequest(http.MethodGet, "/ws?token=s3cret-query", nil)
		r.RemoteAddr = "198.51.100.7:4242"
		r.Header.Set("Origin", "https://example.com.evil.net")
		r.Header.Set("User-Agent", "test-agent/1")
		r.Header.Set("Authorization", "Bearer s3cret-header")
		r.Header.Set("Cookie", "session=s3cret-cookie")
		w := httptest.NewRecorder()
		o.Middleware(next).ServeHTTP(w, r)
		assertRefusal(t, w.Code, w.Header(), w.Body, http.StatusForbidden, "FORBIDDEN", "")
		assertSecurityLine(t, logs, map[string]string{
			"event":      "origin_rejected",
			"ip":         "198.51.100.7",
			"origin":     "https://example.com.evil.net",
			"user_agent": "test-agent/1",
			"path":       "/ws",
		}, "s3cret", "token=")
	})
	t.Run("allowed_origin_reaches_next_without_logging", func(t *testing.T) {
		logger, logs := newTestLogger()
		o := newTestOrigins(t, guard.OriginOptions{Logger: logger})
		called := false
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Origin", "https://chat.example.com")
		o.Middleware(next).ServeHTTP(httptest.NewRecorder(), r)
		if !called {
			t.Error("next did not run for an allowed origin")
		}
		if s := logs.String(); s != "" {
			t.Errorf("allowed request logged %q", s)
		}
	})
}

// FuzzOriginAllow checks that Allow never panics and, against net/url as an
// independent oracle, never admits an origin outside the configured list: in
// particular the pattern "https://*.example.com" admits only hosts that end
// in ".example.com".
func FuzzOriginAllow(f *testing.F) {
	for _, c := range originCases {
		f.Add(c.origin)
	}
	f.Add("https://example.com*")
	f.Add("https://x.example.com:443")
	o, err := guard.NewOrigins(guard.OriginOptions{Allowed: []string{
		"https://app.example.org", "http://127.0.0.1:8080", "https://*.example.com",
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		if !o.Allow(origin) {
			return
		}
		u, err := url.Parse(origin)
		if err != nil {
			t.Fatalf("Allow(%q) = true, but net/url cannot parse it: %v", origin, err)
		}
		if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("Allow(%q) = true for an origin with userinfo, path, query or fragment", origin)
		}
		host, port, scheme := strings.ToLower(u.Hostname()), u.Port(), strings.ToLower(u.Scheme)
		switch {
		case scheme == "http" && host == "127.0.0.1" && port == "8080":
		case scheme == "https" && host == "app.example.org" && (port == "" || port == "443"):
		case scheme == "https" && strings.HasSuffix(host, ".example.com") && (port == "" || port == "443"):
		default:
			t.Fatalf("Allow(%q) = true; scheme %q host %q port %q are not on the list", origin, scheme, host, port)
		}
	})
}

func BenchmarkOriginAllow(b *testing.B) {
	o := newTestOrigins(b, guard.OriginOptions{})
	for _, bc := range []struct{ name, origin string }{
		{"exact_hit", "https://app.example.com"},
		{"pattern_hit", "https://chat.example.com"},
		{"lookalike_miss", "https://example.com.evil.net"},
		{"upper_case_hit", "HTTPS://APP.EXAMPLE.COM"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				o.Allow(bc.origin)
			}
		})
	}
}
