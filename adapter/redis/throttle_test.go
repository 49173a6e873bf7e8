package redis

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
)

func newThrottle(t *testing.T, o ThrottleOptions) *Throttle {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	th, err := NewThrottle(o)
	if err != nil {
		t.Fatalf("NewThrottle: %v", err)
	}
	t.Cleanup(func() { th.Close() })
	return th
}

func allow(t *testing.T, th *Throttle, key string) (bool, time.Duration) {
	t.Helper()
	ok, retry, err := th.Allow(context.Background(), key)
	if err != nil {
		t.Fatalf("Allow(%s): %v", key, err)
	}
	return ok, retry
}

func TestThrottle(t *testing.T) {
	srv := redistest.Start(t)
	addrs := []string{srv.Addr()}

	t.Run("burst_is_shared_by_every_node", func(t *testing.T) {
		o := ThrottleOptions{Addrs: addrs, Attempts: 3, Window: time.Minute}
		a, b := newThrottle(t, o), newThrottle(t, o)
		for i, th := range []*Throttle{a, b, a} {
			if ok, _ := allow(t, th, "10.0.0.1"); !ok {
				t.Fatalf("attempt %d refused within the burst", i+1)
			}
		}
		ok, retry := allow(t, b, "10.0.0.1")
		if ok || retry <= 19*time.Second || retry > 20*time.Second {
			t.Fatalf("4th attempt: %v, retry %s; want refused for about Window/Attempts (20s)", ok, retry)
		}
		if ok, _ := allow(t, b, "10.0.0.2"); !ok {
			t.Fatal("another key was refused")
		}
	})
	t.Run("a_token_comes_back_after_the_emission_interval", func(t *testing.T) {
		th := newThrottle(t, ThrottleOptions{Addrs: addrs, Attempts: 10, Window: time.Second, Burst: 1})
		allow(t, th, "k")
		ok, retry := allow(t, th, "k")
		if ok || retry <= 0 || retry > 100*time.Millisecond {
			t.Fatalf("second attempt: %v, retry %s; want refused for at most 100ms", ok, retry)
		}
		eventually(t, "token refilled", func() error {
			if ok, _ := allow(t, th, "k"); !ok {
				return errors.New("still refused")
			}
			return nil
		})
	})
	t.Run("idle_keys_expire", func(t *testing.T) {
		th := newThrottle(t, ThrottleOptions{Addrs: addrs, Attempts: 10, Window: time.Second})
		allow(t, th, "idle")
		raw := rawClient(t, srv.Addr())
		pttl, err := raw.Do(context.Background(), raw.B().Pttl().Key("wsgate:throttle:{idle}").Build()).AsInt64()
		if err != nil || pttl <= 0 || pttl > 100 {
			t.Fatalf("PTTL = %d, %v; want within (0, 100]ms", pttl, err)
		}
	})
	t.Run("middleware_answers_429_with_retry_after_and_counts_it", func(t *testing.T) {
		obs := &refusals{}
		th := newThrottle(t, ThrottleOptions{Addrs: addrs, Attempts: 1, Window: time.Hour, Observer: obs,
			Key: func(r *http.Request) string { return r.Header.Get("X-Client") }})
		h := th.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		do := func(client string) *httptest.ResponseRecorder {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.Header.Set("X-Client", client)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}
		if w := do("mw"); w.Code != http.StatusNoContent {
			t.Fatalf("first request: %d", w.Code)
		}
		w := do("mw")
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "3600" ||
			!strings.Contains(w.Body.String(), `"RATE_LIMITED"`) {
			t.Fatalf("second request: %d %v %s", w.Code, w.Header(), w.Body)
		}
		if got := obs.list(); !slices.Equal(got, []string{"handshake_throttled"}) {
			t.Fatalf("observer saw %v, want one handshake_throttled", got)
		}
	})
	t.Run("default_key_is_the_peer_with_ipv6_grouped_by_64", func(t *testing.T) {
		th := newThrottle(t, ThrottleOptions{Addrs: addrs, Attempts: 1, Window: time.Hour})
		h := th.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		do := func(peer string) int {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.RemoteAddr = peer
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Code
		}
		for _, tt := range []struct {
			peer string
			want int
		}{
			{"192.0.2.7:1000", http.StatusNoContent},
			{"192.0.2.7:2000", http.StatusTooManyRequests}, // another port, same client
			{"192.0.2.8:1000", http.StatusNoContent},
			{"[2001:db8:1:2::1]:1000", http.StatusNoContent},
			{"[2001:db8:1:2:ffff::9]:1000", http.StatusTooManyRequests}, // same /64
			{"[2001:db8:1:3::1]:1000", http.StatusNoContent},
		} {
			if got := do(tt.peer); got != tt.want {
				t.Errorf("peer %s: %d, want %d", tt.peer, got, tt.want)
			}
		}
	})
	t.Run("redis_down_fails_closed_unless_fail_open", func(t *testing.T) {
		down := redistest.Start(t)
		key := func(*http.Request) string { return "x" }
		obs := &refusals{}
		closed := newThrottle(t, ThrottleOptions{Addrs: []string{down.Addr()}, Timeout: 300 * time.Millisecond, Key: key, Observer: obs})
		open := newThrottle(t, ThrottleOptions{Addrs: []string{down.Addr()}, Timeout: 300 * time.Millisecond, FailOpen: true, Key: key, Observer: obs})
		down.Kill()
		if _, _, err := closed.Allow(context.Background(), "x"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Allow with Redis down: %v", err)
		}
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
		for _, tt := range []struct {
			th   *Throttle
			want int
		}{{closed, http.StatusServiceUnavailable}, {open, http.StatusNoContent}} {
			w := httptest.NewRecorder()
			tt.th.Middleware(next).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ws", nil))
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
		}
		if got := obs.list(); !slices.Equal(got, []string{"throttle_unavailable"}) {
			t.Fatalf("observer saw %v, want one throttle_unavailable", got)
		}
	})
	t.Run("bad_options_are_refused", func(t *testing.T) {
		for _, o := range []ThrottleOptions{
			{},
			{Addrs: addrs, Attempts: -1},
			{Addrs: addrs, Attempts: 10, Window: time.Microsecond},
		} {
			if th, err := NewThrottle(o); err == nil {
				th.Close()
				t.Fatalf("NewThrottle(%+v) succeeded", o)
			}
		}
	})
}

// refusals records what an Observer is told.
type refusals struct {
	mu      sync.Mutex
	reasons []string
}

func (r *refusals) Refused(reason string) {
	r.mu.Lock()
	r.reasons = append(r.reasons, reason)
	r.mu.Unlock()
}

func (r *refusals) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reasons)
}
