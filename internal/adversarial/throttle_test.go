package adversarial

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/wsgate/wsgate/guard"
)

// TestThrottleSpoofing tries to get past the per-IP handshake throttle by
// claiming other addresses in forwarding headers. Only a trusted proxy's
// X-Forwarded-For is believed, and of it only the hop that proxy wrote.
func TestThrottleSpoofing(t *testing.T) {
	const attempts = 3
	tests := []struct {
		name    string
		proxies []netip.Prefix
		headers func(i int) http.Header
	}{
		{"rotating_x_forwarded_for_from_an_untrusted_peer", nil, func(i int) http.Header {
			return http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", i)}}
		}},
		{"rotating_x_real_ip_and_forwarded", nil, func(i int) http.Header {
			return http.Header{"X-Real-Ip": {fmt.Sprintf("203.0.113.%d", i)}, "Forwarded": {fmt.Sprintf("for=203.0.113.%d", i)}}
		}},
		{"rotating_ipv6_from_an_untrusted_peer", nil, func(i int) http.Header {
			return http.Header{"X-Forwarded-For": {fmt.Sprintf("2001:db8:%x::1", i)}}
		}},
		// Behind a trusted proxy (here the loopback peer itself), the
		// client can still prepend hops; the proxy appends the address it
		// saw, which is the one counted.
		{"hops_prepended_in_front_of_a_trusted_proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, func(i int) http.Header {
			return http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d, 198.51.100.7", i)}}
		}},
		{"a_second_header_line_in_front_of_a_trusted_proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, func(i int) http.Header {
			return http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", i), "198.51.100.7"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A clock that stands still: no token comes back during the test.
			frozen := time.Now()
			srv := Start(t, Config{Throttle: guard.ThrottleOptions{Attempts: attempts, TrustedProxies: tt.proxies,
				Now: func() time.Time { return frozen }}})
			tok := Token(t, nil)
			for i := range attempts {
				if _, resp, err := srv.Dial(t, Handshake{Token: tok, Header: tt.headers(i)}); err != nil {
					t.Fatalf("attempt %d within the limit: %v (%v)", i+1, err, resp)
				}
			}
			for i := attempts; i < attempts+3; i++ {
				_, resp, err := srv.Dial(t, Handshake{Token: tok, Header: tt.headers(i)})
				ExpectRefusal(t, resp, err, http.StatusTooManyRequests, "RATE_LIMITED")
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
			}
		})
	}
}
