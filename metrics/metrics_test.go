package metrics_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/metrics"
)

var secret = []byte("metrics-test-secret-of-32-bytes-or-more")

// server is a hub behind guard middleware with /metrics, /healthz, /readyz.
type server struct {
	hub *hub.Hub
	srv *httptest.Server
}

func newServer(t *testing.T) *server {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Options{Authenticator: authn, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchReadiness(h.Ready); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchReadiness(h.Ready); err == nil {
		t.Fatal("a second WatchReadiness was accepted")
	}
	hub.Handle(h, "ping", func(ctx hub.Context, in struct{}) (struct{}, error) { return struct{}{}, nil },
		hub.WithRateLimit(hub.Limit{Rate: 0.001, Burst: 1}))
	throttle, err := guard.NewThrottle(guard.ThrottleOptions{Attempts: 1000, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", guard.Chain(h, throttle.Middleware))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/healthz", h.LivenessHandler())
	mux.Handle("/readyz", h.ReadinessHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	return &server{hub: h, srv: srv}
}

func (s *server) dial(t *testing.T, sub string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	if sub == "" {
		tok = "not-a-token"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.srv.URL, "http")+"/ws", &websocket.DialOptions{
		HTTPHeader:   http.Header{"Origin": {s.srv.URL}, "Authorization": {"Bearer " + tok}},
		Subprotocols: []string{"wsgate.v1"},
	})
}

// scrape fetches /metrics and returns sample values by series.
func (s *server) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func waitFor(t *testing.T, s *server, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.scrape(t)[series]
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", series, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	s := newServer(t)
	a, _, err := s.dial(t, "alice")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.dial(t, "bob")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "wsgate_connections", 2)
	waitFor(t, s, "wsgate_connects_total", 2)

	ctx := context.Background()
	_, _, _ = a.Read(ctx) // welcome
	for i := 0; i < 2; i++ {
		_ = a.Write(ctx, websocket.MessageText, []byte(`{"type":"event","id":1,"event":"ping"}`))
		_, _, _ = a.Read(ctx)
	}
	_ = a.Write(ctx, websocket.MessageText, []byte(`{"type":"event","id":2,"event":"whatever-attacker-sends"}`))
	_, _, _ = a.Read(ctx)
	waitFor(t, s, `wsgate_messages_in_total{event="ping",outcome="ok"}`, 1)
	waitFor(t, s, `wsgate_messages_in_total{event="ping",outcome="rate_limited"}`, 1)
	waitFor(t, s, `wsgate_rate_limited_total{event="ping"}`, 1)
	waitFor(t, s, `wsgate_messages_in_total{event="_unknown",outcome="unknown_event"}`, 1)
	if _, ok := s.scrape(t)[`wsgate_messages_in_total{event="whatever-attacker-sends",outcome="unknown_event"}`]; ok {
		t.Fatal("an unregistered event name became a label value")
	}

	if err := s.hub.ToAll(ctx, "notice", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "wsgate_messages_out_total", 2)
	waitFor(t, s, "wsgate_broker_publish_duration_seconds_count", 1)

	if _, resp, err := s.dial(t, ""); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %v", err)
	}
	waitFor(t, s, `wsgate_auth_failures_total{reason="invalid"}`, 1)
	waitFor(t, s, `wsgate_handshake_refusals_total{reason="unauthorized"}`, 1)

	a.Close(websocket.StatusNormalClosure, "")
	b.CloseNow()
	waitFor(t, s, "wsgate_connections", 0)
	waitFor(t, s, `wsgate_disconnects_total{reason="client_closed"}`, 1)
	waitFor(t, s, `wsgate_disconnects_total{reason="connection_lost"}`, 1)
}

func TestHealthAndReadiness(t *testing.T) {
	s := newServer(t)
	get := func(path string) int {
		resp, err := http.Get(s.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/healthz") != 200 || get("/readyz") != 200 {
		t.Fatal("not healthy and ready at start")
	}
	waitFor(t, s, "wsgate_ready", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if get("/readyz") != http.StatusServiceUnavailable {
		t.Fatal("ready while shut down")
	}
	waitFor(t, s, "wsgate_ready", 0)
	if get("/healthz") != 200 {
		t.Fatal("liveness failed during shutdown")
	}
}

func TestNewRequiresARegistry(t *testing.T) {
	if _, err := metrics.New(nil, metrics.Options{}); err == nil {
		t.Fatal("nil registerer accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, metrics.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg, metrics.Options{}); err == nil {
		t.Fatal("double registration accepted")
	}
}
