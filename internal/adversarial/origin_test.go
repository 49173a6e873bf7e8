package adversarial

import (
	"net/http"
	"testing"
)

// TestOriginTricks sends the Origin headers a malicious page, or a
// non-browser client pretending to be one, would use against an allowlist
// of https://app.example.com. Every one is refused with 403 before the
// upgrade, even with a valid token.
func TestOriginTricks(t *testing.T) {
	srv := Start(t, Config{Origins: []string{"https://app.example.com", "https://*.tenant.example.com"}})
	tok := Token(t, nil)
	for _, tt := range []struct {
		name, origin string
	}{
		{"lookalike_suffix", "https://app.example.com.evil.net"},
		{"lookalike_prefix", "https://evilapp.example.com"},
		{"lookalike_label", "https://app-example.com"},
		{"userinfo", "https://app.example.com@evil.net"},
		{"userinfo_in_front", "https://evil.net@app.example.com"},
		{"null_from_a_sandboxed_frame", "null"},
		{"another_port", "https://app.example.com:8443"},
		{"plain_http", "http://app.example.com"},
		{"websocket_scheme", "wss://app.example.com"},
		{"with_a_path", "https://app.example.com/"},
		{"trailing_dot", "https://app.example.com."},
		{"wildcard_base_domain", "https://tenant.example.com"},
		{"wildcard_lookalike", "https://a.tenant.example.com.evil.net"},
		{"unicode_lookalike", "https://аpp.example.com"},
		{"percent_encoded_host", "https://app%2eexample.com"},
		{"two_origins", "https://app.example.com, https://evil.net"},
		{"missing", NoOrigin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := srv.Dial(t, Handshake{Token: tok, Origin: tt.origin})
			ExpectRefusal(t, resp, err, http.StatusForbidden, "FORBIDDEN")
		})
	}
	for _, origin := range []string{"https://app.example.com", "HTTPS://APP.EXAMPLE.COM:443", "https://a.tenant.example.com"} {
		t.Run("allowed_"+origin, func(t *testing.T) {
			if _, resp, err := srv.Dial(t, Handshake{Token: tok, Origin: origin}); err != nil {
				t.Fatalf("refused: %v %v", err, resp.Status)
			}
		})
	}
}
