package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestServesTLS runs the command with -tls-cert and -tls-key, a
// certificate made for the test, and talks to it over crypto/tls: the
// WebSocket handshake, and a tenant notification posted over HTTPS that
// reaches the tenant's users and nobody else.
func TestServesTLS(t *testing.T) {
	certFile, keyFile, roots := testutil.Certificate(t)
	const origin = "https://notify.example"
	addr, logs := runCommand(t, []string{"-addr", "127.0.0.1:0", "-origins", origin, "-tls-cert", certFile, "-tls-key", keyFile},
		map[string]string{"WSGATE_JWT_SECRET": testSecret})
	e := &testEnv{
		url:    "https://" + addr,
		origin: origin,
		logs:   logs,
		httpClient: &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		}},
		issuer: &tokenIssuer{secret: []byte(testSecret), ttl: time.Hour},
	}

	t.Run("tls_handshake_offers_http1_only", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.Version < tls.VersionTLS12 || st.NegotiatedProtocol != "http/1.1" {
			t.Fatalf("version %x, protocol %q; want TLS 1.2+ and http/1.1", st.Version, st.NegotiatedProtocol)
		}
	})
	t.Run("a_certificate_the_client_does_not_trust_fails_the_handshake", func(t *testing.T) {
		_, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: x509.NewCertPool()})
		if err == nil {
			t.Fatal("handshake succeeded without trusting the certificate")
		}
	})
	t.Run("tenant_notification_fans_out_over_wss", func(t *testing.T) {
		alice, bob, carol := e.connect(t, "alice"), e.connect(t, "bob"), e.connect(t, "carol")
		id := e.mustNotify(t, "alice", map[string]any{"target": "tenant", "id": "acme", "title": "over TLS"})
		for _, c := range []*client{alice, bob} {
			if got := received(t, c.nextEvent(eventNew)); got.ID != id || got.Title != "over TLS" {
				t.Errorf("%s got %+v", c.user, got)
			}
		}
		carol.expectNoEvent("another tenant's notification")
	})
}

func TestDefaultOriginFollowsTLS(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		https bool
		want  string
	}{
		{"127.0.0.1:8081", false, "http://127.0.0.1:8081"},
		{"127.0.0.1:8443", true, "https://127.0.0.1:8443"},
	} {
		if got, err := defaultOrigin(tc.addr, tc.https); err != nil || got != tc.want {
			t.Errorf("defaultOrigin(%q, %v) = %q, %v; want %q", tc.addr, tc.https, got, err, tc.want)
		}
	}
}

// runCommand runs the command with args and env until the test ends, and
// returns the address it listens on and its log.
func runCommand(t *testing.T, args []string, env map[string]string) (addr string, logs *syncBuffer) {
	t.Helper()
	var out syncBuffer
	return testutil.RunCommand(t, func(ctx context.Context, log *slog.Logger) error {
		return run(ctx, args, func(k string) string { return env[k] }, &out, &out, log)
	}, readTimeout, shutdownGrace+readTimeout)
}
