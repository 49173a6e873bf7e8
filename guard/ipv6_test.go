package guard_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/guard"
)

// newIPv6Server serves WebSocket upgrades behind th on a real [::1]
// listener. Without IPv6 loopback the test fails: that is a broken machine,
// not a reason to skip.
func newIPv6Server(t *testing.T, th *guard.Throttle) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback is not available: %v", err)
	}
	accept := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	srv := httptest.NewUnstartedServer(guard.Chain(accept, th.Middleware))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://[::1]:") {
		t.Fatalf("server at %s, want [::1]", srv.URL)
	}
	return srv
}

// handshake runs a WebSocket handshake with an optional X-Forwarded-For
// and returns the HTTP status: 101 for an upgrade.
func handshake(t *testing.T, srv *httptest.Server, forwardedFor string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if forwardedFor != "" {
		h.Set("X-Forwarded-For", forwardedFor)
	}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		c.CloseNow()
		return resp.StatusCode
	}
	if resp == nil {
		t.Fatalf("handshake: %v", err)
	}
	return resp.StatusCode
}

// ipv6Step is one handshake and the status it must get.
type ipv6Step struct {
	xff  string // X-Forwarded-For, "" for none
	want int
}

// TestThrottleOverIPv6Loopback runs handshakes over a real [::1] socket.
// Only ::1 exists there, so the clients of other /64 networks come through
// X-Forwarded-For from ::1 as a trusted proxy, as they would behind a
// reverse proxy on the same host.
func TestThrottleOverIPv6Loopback(t *testing.T) {
	loopbackProxy := []netip.Prefix{netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name  string
		opts  guard.ThrottleOptions
		steps []ipv6Step
	}{
		{"ipv6_peer_is_throttled", guard.ThrottleOptions{Attempts: 2}, []ipv6Step{{"", 101}, {"", 101}, {"", 429}}},
		{"addresses_of_one_64_share_a_bucket", guard.ThrottleOptions{Attempts: 2, TrustedProxies: loopbackProxy}, []ipv6Step{
			{"2001:db8:1:2::a", 101},
			{"2001:db8:1:2::b", 101},
			{"2001:db8:1:2:ffff:ffff:ffff:ffff", 429}, // the same /64, rotated
			{"2001:db8:1:3::a", 101},                  // the next /64 has its own bucket
			{"2001:db8:1:3::a", 101},
			{"2001:db8:1:3:8000::1", 429},
		}},
		{"a_prefix_of_128_counts_each_address", guard.ThrottleOptions{Attempts: 1, IPv6Prefix: 128, TrustedProxies: loopbackProxy}, []ipv6Step{
			{"2001:db8:1:2::a", 101},
			{"2001:db8:1:2::b", 101},
			{"2001:db8:1:2::a", 429},
		}},
		{"a_prefix_of_48_groups_wider", guard.ThrottleOptions{Attempts: 2, IPv6Prefix: 48, TrustedProxies: loopbackProxy}, []ipv6Step{
			{"2001:db8:1:2::a", 101},
			{"2001:db8:1:3::a", 101},
			{"2001:db8:1:ffff::a", 429},
			{"2001:db8:2::a", 101},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, _ := newTestThrottle(t, tt.opts) // a clock that stands still: no refill

			srv := newIPv6Server(t, th)
			for i, s := range tt.steps {
				if got := handshake(t, srv, s.xff); got != s.want {
					t.Fatalf("handshake %d (X-Forwarded-For %q): status %d, want %d", i, s.xff, got, s.want)
				}
			}
		})
	}
}
