package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"slices"
	"testing"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestServesTLS runs the command with -tls-cert and -tls-key, a
// certificate made for the test, and talks to it over crypto/tls: the
// WebSocket handshake, a message fanned out to two users, and the
// graceful shutdown.
func TestServesTLS(t *testing.T) {
	certFile, keyFile, roots := testutil.Certificate(t)
	const secret = "0123456789abcdef0123456789abcdef"
	const origin = "https://chat.example"
	addr, logs := runCommand(t, []string{"-addr", "127.0.0.1:0", "-origins", origin, "-tls-cert", certFile, "-tls-key", keyFile},
		map[string]string{"WSGATE_JWT_SECRET": secret})
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	e := &testEnv{
		url:        "https://" + addr,
		origin:     origin,
		secret:     []byte(secret),
		logs:       logs,
		httpClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}},
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
	t.Run("plain_http_on_the_tls_port_is_refused", func(t *testing.T) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain HTTP got %s, want 400", resp.Status)
			}
		}
	})
	t.Run("messages_fan_out_over_wss", func(t *testing.T) {
		alice, bob := e.connect(t, "alice"), e.connect(t, "bob")
		alice.mustJoin(demoRoom)
		bob.mustJoin(demoRoom)
		if reply := alice.event("message:send", map[string]any{"conversationId": demoConversation, "content": "over TLS"}); reply.Type != "ack" {
			t.Fatalf("message:send: %s %s", reply.Code, reply.Message)
		}
		for name, c := range map[string]*client{"alice": alice, "bob": bob} {
			var got messageNew
			decode(t, c.next(func(f frame) bool { return f.Event == "message:new" }).Data, &got)
			if got.Content != "over TLS" {
				t.Errorf("%s got %+v", name, got)
			}
		}
	})
}

func TestDefaultOriginsFollowTLS(t *testing.T) {
	for addr, want := range map[string][]string{
		"127.0.0.1:8443":   {"https://127.0.0.1:8443", "https://localhost:8443"},
		"chat.example:443": {"https://chat.example:443"},
	} {
		if got, err := defaultOrigins(addr, true); err != nil || !slices.Equal(got, want) {
			t.Errorf("defaultOrigins(%q, true) = %v, %v; want %v", addr, got, err, want)
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
