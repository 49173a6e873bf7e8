package guard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/wsgate/wsgate/guard"
)

func newTestThrottle(t testing.TB, opts guard.ThrottleOptions) (*guard.Throttle, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	th, err := guard.NewThrottle(opts)
	if err != nil {
		t.Fatalf("NewThrottle: %v", err)
	}
	return th, clock
}

func TestNewThrottle(t *testing.T) {
	tests := []struct {
		name string
		opts guard.ThrottleOptions
	}{
		{"negative_attempts_is_an_error", guard.ThrottleOptions{Attempts: -1}},
		{"negative_window_is_an_error", guard.ThrottleOptions{Window: -time.Second}},
		{"negative_burst_is_an_error", guard.ThrottleOptions{Burst: -1}},
		{"ipv6_prefix_over_128_is_an_error", guard.ThrottleOptions{IPv6Prefix: 129}},
		{"max_clients_of_one_is_an_error", guard.ThrottleOptions{MaxClients: 1}},
		{"invalid_trusted_proxy_is_an_error", guard.ThrottleOptions{TrustedProxies: []netip.Prefix{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if th, err := guard.NewThrottle(tt.opts); err == nil || th != nil {
				t.Fatalf("NewThrottle(%+v) = %v, %v; want nil and an error", tt.opts, th, err)
			}
		})
	}
}

type throttleStep struct {
	advance   time.Duration
	addr      string
	wantOK    bool
	wantRetry time.Duration
}

func TestThrottle(t *testing.T) {
	tests := []struct {
		name  string
		opts  guard.ThrottleOptions
		steps []throttleStep
	}{
		{"default_is_ten_back_to_back_then_one_every_six_seconds", guard.ThrottleOptions{}, append(
			repeatStep(10, throttleStep{addr: "192.0.2.1", wantOK: true}),
			throttleStep{addr: "192.0.2.1", wantRetry: 6 * time.Second},
			throttleStep{advance: 6 * time.Second, addr: "192.0.2.1", wantOK: true},
			throttleStep{addr: "192.0.2.1", wantRetry: 6 * time.Second},
		)},
		{"burst_is_allowed_then_refused", guard.ThrottleOptions{Attempts: 10, Burst: 3}, []throttleStep{
			{addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantRetry: 6 * time.Second},
		}},
		{"refused_attempt_does_not_consume_a_token", guard.ThrottleOptions{Attempts: 10, Burst: 1}, []throttleStep{
			{addr: "192.0.2.1", wantOK: true},
			{advance: 2 * time.Second, addr: "192.0.2.1", wantRetry: 4 * time.Second},
			{addr: "192.0.2.1", wantRetry: 4 * time.Second},
			{advance: 4 * time.Second, addr: "192.0.2.1", wantOK: true},
		}},
		{"bucket_refills_fully_after_quiet_window", guard.ThrottleOptions{Attempts: 2, Burst: 2}, []throttleStep{
			{addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantRetry: 30 * time.Second},
			{advance: time.Hour, addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantRetry: 30 * time.Second},
		}},
		{"clients_have_separate_buckets", guard.ThrottleOptions{Attempts: 1}, []throttleStep{
			{addr: "192.0.2.1", wantOK: true},
			{addr: "192.0.2.1", wantRetry: time.Minute},
			{addr: "192.0.2.2", wantOK: true},
		}},
		{"ipv6_clients_are_grouped_by_64", guard.ThrottleOptions{Attempts: 2}, []throttleStep{
			{addr: "2001:db8:1:2::1", wantOK: true},
			{addr: "2001:db8:1:2:ffff:ffff:ffff:ffff", wantOK: true},
			{addr: "2001:db8:1:2:dead:beef::7", wantRetry: 30 * time.Second},
			{addr: "2001:db8:1:3::1", wantOK: true},
		}},
		{"ipv6_grouping_is_configurable", guard.ThrottleOptions{Attempts: 1, IPv6Prefix: 128}, []throttleStep{
			{addr: "2001:db8:1:2::1", wantOK: true},
			{addr: "2001:db8:1:2::2", wantOK: true},
		}},
		{"ipv4_mapped_ipv6_counts_as_ipv4", guard.ThrottleOptions{Attempts: 1}, []throttleStep{
			{addr: "192.0.2.1", wantOK: true},
			{addr: "::ffff:192.0.2.1", wantRetry: time.Minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, clock := newTestThrottle(t, tt.opts)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				ok, retry := th.Allow(netip.MustParseAddr(s.addr))
				if ok != s.wantOK || retry != s.wantRetry {
					t.Fatalf("step %d Allow(%s) = %v, %v; want %v, %v", i, s.addr, ok, retry, s.wantOK, s.wantRetry)
				}
			}
		})
	}
}

func repeatStep(n int, s throttleStep) []throttleStep {
	out := make([]throttleStep, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestThrottleGenerations(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	t.Run("idle_clients_are_forgotten_after_two_refill_times", func(t *testing.T) {
		th, clock := newTestThrottle(t, guard.ThrottleOptions{Attempts: 1})
		for i := range 50 {
			th.Allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		}
		clock.Advance(2 * time.Minute)
		th.Allow(a)
		if n := th.Len(); n != 1 {
			t.Fatalf("Len = %d after two idle refill times, want 1", n)
		}
	})
	t.Run("recent_client_survives_a_size_rotation", func(t *testing.T) {
		th, _ := newTestThrottle(t, guard.ThrottleOptions{Attempts: 1, MaxClients: 4})
		th.Allow(a)
		th.Allow(netip.MustParseAddr("192.0.2.2")) // the current generation is now full
		th.Allow(netip.MustParseAddr("192.0.2.3")) // rotation: a is in the previous one
		if ok, _ := th.Allow(a); ok {
			t.Fatal("client promoted from the previous generation got a fresh bucket")
		}
	})
	t.Run("size_eviction_gives_an_old_client_a_full_bucket", func(t *testing.T) {
		// The documented trade-off: more than MaxClients/2 new clients within
		// a refill time push an old client out, and it starts over.
		th, _ := newTestThrottle(t, guard.ThrottleOptions{Attempts: 1, MaxClients: 4})
		th.Allow(a)
		for i := range 4 {
			th.Allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		}
		if ok, _ := th.Allow(a); !ok {
			t.Fatal("evicted client is still throttled")
		}
	})
}

func TestThrottleMemoryBound(t *testing.T) {
	const maxClients, total = 10_000, 1_000_000
	for _, family := range []string{"ipv4", "ipv6_64s"} {
		t.Run("rotating_"+family+"_addresses_keeps_len_bounded", func(t *testing.T) {
			th, clock := newTestThrottle(t, guard.ThrottleOptions{MaxClients: maxClients})
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			deadline := time.Now().Add(30 * time.Second)
			for i := range total {
				var a netip.Addr
				if family == "ipv4" {
					a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				} else {
					a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: byte(i >> 16), 6: byte(i >> 8), 7: byte(i), 15: 1})
				}
				if ok, _ := th.Allow(a); !ok {
					t.Fatalf("fresh client %s refused", a)
				}
				if i%64 == 0 {
					if n := th.Len(); n > maxClients {
						t.Fatalf("Len = %d after %d clients, want <= %d", n, i+1, maxClients)
					}
					// On a loaded machine the loop stops early rather than
					// fail: speed is not what this test checks, and ten
					// times MaxClients already rotates the table many times.
					if i >= 10*maxClients && time.Now().After(deadline) {
						t.Logf("stopped after %d of %d addresses (30s)", i, total)
						break
					}
					clock.Advance(time.Millisecond) // a flood, far faster than the refill time
				}
			}
			if n := th.Len(); n > maxClients {
				t.Fatalf("Len = %d, want <= %d", n, maxClients)
			}
			var after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&after)
			// 10,000 buckets take a few MB; a million would take hundreds.
			if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 32<<20 {
				t.Fatalf("heap grew by %d MiB for %d tracked clients", grown>>20, th.Len())
			}
			runtime.KeepAlive(th)
		})
	}
}

func TestThrottleClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no_header_is_the_peer", "198.51.100.7:4242", nil, "198.51.100.7"},
		{"spoofed_header_from_untrusted_peer_is_ignored", "198.51.100.7:4242", []string{"1.1.1.1"}, "198.51.100.7"},
		{"trusted_peer_gives_the_right_most_hop", "10.0.0.1:5555", []string{"203.0.113.9"}, "203.0.113.9"},
		{"client_written_hops_are_skipped", "10.0.0.1:5555", []string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"trusted_hops_are_skipped", "10.0.0.1:5555", []string{"1.1.1.1, 203.0.113.9, 10.1.2.3"}, "203.0.113.9"},
		{"several_header_lines_form_one_list", "10.0.0.1:5555", []string{"1.1.1.1", "203.0.113.9, 10.1.2.3"}, "203.0.113.9"},
		{"all_trusted_hops_give_the_left_most", "10.0.0.1:5555", []string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},
		{"hop_with_port_is_accepted", "10.0.0.1:5555", []string{"203.0.113.9:1234"}, "203.0.113.9"},
		{"bracketed_ipv6_hop_is_accepted", "[fd00::1]:5555", []string{"[2001:db8::5]:443"}, "2001:db8::5"},
		{"garbage_hop_falls_back_to_the_peer", "10.0.0.1:5555", []string{"1.1.1.1, not-an-ip"}, "10.0.0.1"},
		{"empty_header_is_the_peer", "10.0.0.1:5555", []string{""}, "10.0.0.1"},
	}
	th, _ := newTestThrottle(t, guard.ThrottleOptions{TrustedProxies: trusted})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := th.ClientIP(r); got != netip.MustParseAddr(tt.want) {
				t.Errorf("ClientIP = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestThrottleMiddleware(t *testing.T) {
	t.Run("refusal_is_429_json_with_retry_after_rounded_up", func(t *testing.T) {
		logger, logs := newTestLogger()
		th, clock := newTestThrottle(t, guard.ThrottleOptions{Attempts: 10, Burst: 1, Logger: logger})
		calls := 0
		h := th.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
		req := func() *httptest.ResponseRecorder {
			r := httptest.NewRequest(http.MethodGet, "/ws?token=s3cret", nil)
			r.RemoteAddr = "198.51.100.7:4242"
			r.Header.Set("Origin", "https://app.example.com")
			r.Header.Set("User-Agent", "bot/2")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}
		if w := req(); w.Code != http.StatusOK {
			t.Fatalf("first attempt: status %d", w.Code)
		}
		clock.Advance(1500 * time.Millisecond) // 4.5 s to go: the header says 5
		w := req()
		assertRefusal(t, w.Code, w.Header(), w.Body, http.StatusTooManyRequests, "RATE_LIMITED", "5")
		if calls != 1 {
			t.Errorf("next ran %d times, want 1", calls)
		}
		assertSecurityLine(t, logs, map[string]string{
			"event": "handshake_throttled", "ip": "198.51.100.7", "origin": "https://app.example.com",
			"user_agent": "bot/2", "path": "/ws",
		}, "s3cret")
	})
	t.Run("rotating_spoofed_forwarded_for_does_not_help_an_untrusted_peer", func(t *testing.T) {
		th, _ := newTestThrottle(t, guard.ThrottleOptions{Attempts: 3})
		h := th.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		codes := make([]int, 0, 5)
		for i := range 5 {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.RemoteAddr = "198.51.100.7:4242"
			r.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			codes = append(codes, w.Code)
		}
		if fmt.Sprint(codes) != "[200 200 200 429 429]" {
			t.Errorf("statuses = %v, want three 200 then 429", codes)
		}
	})
	t.Run("trusted_proxy_clients_are_counted_separately", func(t *testing.T) {
		th, _ := newTestThrottle(t, guard.ThrottleOptions{Attempts: 1,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		h := th.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		for i, want := range []int{200, 200, 429} {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.RemoteAddr = "10.0.0.1:4242"
			r.Header.Set("X-Forwarded-For", []string{"203.0.113.1", "203.0.113.2", "203.0.113.1"}[i])
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != want {
				t.Errorf("request %d: status %d, want %d", i, w.Code, want)
			}
		}
	})
}

func BenchmarkThrottleAllow(b *testing.B) {
	b.Run("same_client", func(b *testing.B) {
		th, clock := newTestThrottle(b, guard.ThrottleOptions{})
		a := netip.MustParseAddr("192.0.2.1")
		b.ReportAllocs()
		for b.Loop() {
			clock.Advance(time.Second) // keep the bucket from running dry
			th.Allow(a)
		}
	})
	b.Run("rotating_clients", func(b *testing.B) {
		th, _ := newTestThrottle(b, guard.ThrottleOptions{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			th.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		}
	})
	b.Run("parallel_clients", func(b *testing.B) {
		th, err := guard.NewThrottle(guard.ThrottleOptions{Attempts: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				th.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
			}
		})
	})
}
