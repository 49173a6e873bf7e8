package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	wsutil "github.com/wsgate/wsgate/internal/testutil"
)

var secret = []byte("gateway-test-secret-of-at-least-32-bytes")

func token(t testing.TB, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// served is a gateway behind a loopback server, with its log.
type served struct {
	g    *gateway.Gateway
	srv  *httptest.Server
	logs *wsutil.SyncBuffer
}

const pageOrigin = "https://app.example.com"

func serve(t *testing.T, configure func(*gateway.Options)) *served {
	t.Helper()
	logs := &wsutil.SyncBuffer{}
	opts := gateway.Options{
		JWT:     &auth.JWTOptions{HMACSecret: secret},
		Origins: []string{pageOrigin},
		Logger:  slog.New(slog.NewJSONHandler(logs, nil)),
	}
	if configure != nil {
		configure(&opts)
	}
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub.Handle(g.Hub(), "echo", func(_ hub.Context, in struct {
		Text string `json:"text" validate:"max=20"`
	}) (string, error) {
		return in.Text, nil
	})
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
		srv.Close()
	})
	return &served{g: g, srv: srv, logs: logs}
}

// dial opens a WebSocket from origin with a token for user; on a refusal
// it returns the HTTP status.
func (s *served) dial(t *testing.T, origin, user string, extra http.Header) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{"Authorization": {"Bearer " + token(t, user)}}
	if origin != "" {
		h.Set("Origin", origin)
	}
	for k, v := range extra {
		h[k] = v
	}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.srv.URL, "http"), &websocket.DialOptions{
		HTTPHeader: h, Subprotocols: []string{"wsgate.v1"},
	})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	readFrame(t, c) // the welcome
	return c, http.StatusSwitchingProtocols
}

func readFrame(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestNewRefuses(t *testing.T) {
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	base := func() gateway.Options {
		return gateway.Options{Authenticator: authn, Origins: []string{pageOrigin}}
	}
	tests := []struct {
		name   string
		modify func(*gateway.Options)
		want   string
	}{
		{"no_authenticator", func(o *gateway.Options) { o.Authenticator = nil }, "set Authenticator or JWT"},
		{"authenticator_and_jwt", func(o *gateway.Options) { o.JWT = &auth.JWTOptions{HMACSecret: secret} }, "not both"},
		{"jwt_without_key", func(o *gateway.Options) { o.Authenticator, o.JWT = nil, &auth.JWTOptions{} }, "auth:"},
		{"no_origins", func(o *gateway.Options) { o.Origins = nil }, "Origins is empty"},
		{"wildcard_origin", func(o *gateway.Options) { o.Origins = []string{"*"} }, "every site"},
		{"registry_and_observer", func(o *gateway.Options) {
			o.Registry, o.Observer = prometheus.NewRegistry(), hub.NopObserver{}
		}, "Registry or Observer"},
		{"logger_said_twice_in_throttle", func(o *gateway.Options) { o.Throttle.Logger = logger }, "not on Throttle or Limits"},
		{"observer_said_twice_in_limits", func(o *gateway.Options) { o.Limits.Observer = hub.NopObserver{} }, "not on Throttle or Limits"},
		{"origin_check_said_twice_in_hub", func(o *gateway.Options) { o.Hub.CheckOrigin = func(*http.Request) bool { return true } }, "not CheckOrigin"},
		{"authenticator_in_hub", func(o *gateway.Options) { o.Hub.Authenticator = authn }, "not on Hub"},
		{"client_ip_in_hub", func(o *gateway.Options) { o.Hub.ClientIP = func(*http.Request) string { return "" } }, "TrustedProxies"},
		{"logger_in_hub", func(o *gateway.Options) { o.Hub.Logger = logger }, "not on Hub"},
		{"negative_limit", func(o *gateway.Options) { o.Limits.PerUser = -1 }, "negative"},
		{"unsafe_hub_option", func(o *gateway.Options) { o.Hub.EventRate = hub.Limit{Rate: 5} }, "burst of 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.modify(&o)
			g, err := gateway.New(o)
			if err == nil {
				_ = g.Shutdown(context.Background())
				t.Fatal("New accepted the options")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestGateway(t *testing.T) {
	t.Run("allowed_origin_connects_and_handlers_run", func(t *testing.T) {
		s := serve(t, nil)
		c, status := s.dial(t, pageOrigin, "alice", nil)
		if c == nil {
			t.Fatalf("status %d, want an upgrade", status)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"event","id":1,"event":"echo","data":{"text":"hi"}}`)); err != nil {
			t.Fatal(err)
		}
		if got := readFrame(t, c); got != `{"type":"ack","id":1,"data":"hi"}` {
			t.Fatalf("got %s", got)
		}
	})

	t.Run("foreign_origin_is_refused_once_by_the_guard", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := serve(t, func(o *gateway.Options) { o.Registry = reg })
		if _, status := s.dial(t, "https://evil.example.net", "alice", nil); status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", status)
		}
		if n := strings.Count(s.logs.String(), `"event":"origin_rejected"`); n != 1 {
			t.Fatalf("%d origin_rejected lines, want 1:\n%s", n, s.logs)
		}
		if n := refusals(t, reg, "origin_rejected"); n != 1 {
			t.Fatalf("origin_rejected counted %v times, want 1", n)
		}
	})

	t.Run("a_plain_request_is_told_to_upgrade_whatever_its_origin", func(t *testing.T) {
		s := serve(t, nil)
		for _, origin := range []string{"", "https://evil.example.net"} {
			req, err := http.NewRequest(http.MethodGet, s.srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), "WebSocket upgrade is required") {
				t.Fatalf("origin %q: status %d, body %s; want 426", origin, resp.StatusCode, body)
			}
		}
	})

	t.Run("per_user_limit_from_limits_options", func(t *testing.T) {
		s := serve(t, func(o *gateway.Options) { o.Limits.PerUser = 1 })
		if c, status := s.dial(t, pageOrigin, "alice", nil); c == nil {
			t.Fatalf("first connection: status %d", status)
		}
		if _, status := s.dial(t, pageOrigin, "alice", nil); status != http.StatusTooManyRequests {
			t.Fatalf("second connection: status %d, want 429", status)
		}
		if c, status := s.dial(t, pageOrigin, "bob", nil); c == nil {
			t.Fatalf("another user: status %d", status)
		}
	})

	t.Run("hub_admit_replaces_the_per_user_limit", func(t *testing.T) {
		errFull := errors.New("cluster full")
		s := serve(t, func(o *gateway.Options) {
			o.Hub.Admit = func(context.Context, string) (func(), error) { return nil, errFull }
		})
		if _, status := s.dial(t, pageOrigin, "alice", nil); status != http.StatusTooManyRequests {
			t.Fatalf("status %d, want the Admit refusal's 429", status)
		}
		if s.g.Limits().Users() != 0 {
			t.Fatal("the node's per-user limit was consulted too")
		}
	})

	t.Run("throttle_is_outermost", func(t *testing.T) {
		s := serve(t, func(o *gateway.Options) { o.Throttle = guard.ThrottleOptions{Attempts: 2, Burst: 2} })
		// Refused attempts count: two foreign origins use the budget up.
		for range 2 {
			if _, status := s.dial(t, "https://evil.example.net", "alice", nil); status != http.StatusForbidden {
				t.Fatalf("status %d, want 403", status)
			}
		}
		if _, status := s.dial(t, pageOrigin, "alice", nil); status != http.StatusTooManyRequests {
			t.Fatalf("status %d, want 429", status)
		}
	})

	t.Run("trusted_proxy_names_the_client_in_the_hub_log", func(t *testing.T) {
		s := serve(t, func(o *gateway.Options) {
			o.Throttle.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		})
		fwd := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
		if c, status := s.dial(t, pageOrigin, "alice", fwd); c == nil {
			t.Fatalf("status %d", status)
		}
		wsutil.Eventually(t, 5*time.Second, "connect line with the forwarded address", func() bool {
			return strings.Contains(s.logs.String(), `"ip":"203.0.113.7"`)
		})
	})

	t.Run("readiness_and_metrics_follow_shutdown", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := serve(t, func(o *gateway.Options) { o.Registry = reg })
		probe := func() int {
			rec := httptest.NewRecorder()
			s.g.ReadinessHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			return rec.Code
		}
		if code := probe(); code != http.StatusOK {
			t.Fatalf("readyz %d before shutdown", code)
		}
		if v := gauge(t, reg, "wsgate_ready"); v != 1 {
			t.Fatalf("wsgate_ready %v before shutdown", v)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.g.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if code := probe(); code != http.StatusServiceUnavailable {
			t.Fatalf("readyz %d after shutdown, want 503", code)
		}
		if v := gauge(t, reg, "wsgate_ready"); v != 0 {
			t.Fatalf("wsgate_ready %v after shutdown", v)
		}
		rec := httptest.NewRecorder()
		s.g.LivenessHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("healthz %d after shutdown, want 200", rec.Code)
		}
	})
}

func refusals(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wsgate_handshake_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
