package adversarial

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestDNSRebinding attacks a server that embeds the hub without an origin
// allowlist, relying on the hub's default origin check. A page on
// rebind.attacker.example, whose name the attacker then points at the
// server's address, opens a WebSocket: the browser sends the attacker's
// name as both Host and Origin, and the victim's cookie or token with it.
// The default check does not believe the Host header, so every such page is
// refused with 403, as are names that merely look like loopback.
func TestDNSRebinding(t *testing.T) {
	srv := Start(t, Config{HubOriginCheck: true})
	_, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	tok := Token(t, nil)
	for _, tt := range []struct{ name, host, origin string }{
		{"rebound_name_as_host_and_origin", "rebind.attacker.example:" + port, "http://rebind.attacker.example:" + port},
		{"rebound_name_over_https", "rebind.attacker.example:" + port, "https://rebind.attacker.example:" + port},
		{"rebound_name_without_a_port", "rebind.attacker.example", "http://rebind.attacker.example"},
		{"localhost_as_a_subdomain", "localhost.attacker.example:" + port, "http://localhost.attacker.example:" + port},
		{"loopback_address_as_a_subdomain", "127.0.0.1.attacker.example:" + port, "http://127.0.0.1.attacker.example:" + port},
		{"localhost_with_a_trailing_dot", "localhost.:" + port, "http://localhost.:" + port},
		{"loopback_in_short_form", "127.1:" + port, "http://127.1:" + port},
		{"loopback_as_a_number", "2130706433:" + port, "http://2130706433:" + port},
		{"loopback_with_userinfo", srv.Addr, "http://127.0.0.1:" + port + "@rebind.attacker.example"},
		{"null_origin_of_a_sandboxed_frame", srv.Addr, "null"},
		{"no_origin", srv.Addr, NoOrigin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := srv.DialRaw(t, Handshake{Token: tok, Host: tt.host, Origin: tt.origin})
			ExpectRefusal(t, resp, err, http.StatusForbidden, "FORBIDDEN")
		})
	}
	t.Run("a_page_served_from_loopback_is_allowed", func(t *testing.T) {
		for _, origin := range []string{"http://127.0.0.1:" + port, "http://localhost:" + port} {
			if _, resp, err := srv.DialRaw(t, Handshake{Token: tok, Origin: origin}); err != nil {
				t.Fatalf("origin %s: %v %v", origin, err, resp)
			}
		}
	})
}

// TestMalformedKeyIsNotReflected sends handshakes whose Sec-WebSocket-Key
// carries markup, as a reflected-XSS probe would. Each is refused with 400
// and the protocol's JSON body, and no part of the answer repeats the key.
func TestMalformedKeyIsNotReflected(t *testing.T) {
	srv := Start(t, Config{})
	tok := Token(t, nil)
	const probe = "<script>alert(1)</script>"
	for _, tt := range []struct {
		name string
		keys []string
	}{
		{"markup", []string{probe}},
		{"markup_of_the_right_length", []string{"<svg/onload=alert(1)>AA="}},
		{"base64_of_14_bytes", []string{"PHNjcmlwdD5hbGVydCg="}},
		{"base64_of_17_bytes", []string{"PHNjcmlwdD5hbGVydCgxKTw="}},
		{"base64_of_18_bytes_in_24_characters", []string{"PHNjcmlwdD5hbGVydCgxKTwh"}},
		{"two_keys", []string{"dGhlIHNhbXBsZSBub25jZQ==", probe}},
		{"empty", []string{""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := srv.DialRaw(t, Handshake{Token: tok, Header: http.Header{"Sec-WebSocket-Key": tt.keys}})
			if err == nil || resp == nil {
				t.Fatalf("upgraded (%v)", err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			var refusal struct{ Code, Message string }
			_ = json.Unmarshal(body, &refusal) // a body that is not JSON fails below
			answer := string(body) + "\n" + refusal.Message + "\n"
			for k, vs := range resp.Header {
				answer += k + ": " + strings.Join(vs, ", ") + "\n"
			}
			for _, key := range tt.keys {
				if key != "" && strings.Contains(answer, key) {
					t.Fatalf("the answer repeats the key %q:\n%s", key, answer)
				}
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q, want JSON", ct)
			}
			if resp.StatusCode != http.StatusBadRequest || refusal.Code != "BAD_REQUEST" {
				t.Fatalf("%s %s, want 400 BAD_REQUEST", resp.Status, body)
			}
		})
	}
}
