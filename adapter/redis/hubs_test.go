package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/redistest"
)

var (
	_ hub.Presence = (*redis.Presence)(nil)
	_              = hub.Options{Admit: (*redis.Limiter)(nil).Admit}
)

var hubSecret = []byte("hub-test-secret-that-is-at-least-32-bytes")

// node is one hub with its own Limiter and Presence on a shared Redis,
// served over loopback: one of several wsgate processes.
type node struct {
	t   *testing.T
	hub *hub.Hub
	srv *httptest.Server
}

func startNode(t *testing.T, addr string, perUser int) *node {
	t.Helper()
	limiter, err := redis.NewLimiter(redis.LimiterOptions{Addrs: []string{addr}, PerUser: perUser})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { limiter.Close() })
	presence, err := redis.NewPresence(redis.PresenceOptions{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { presence.Close() })
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: hubSecret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Options{
		CloseBroker:   true,
		Authenticator: authn,
		Admit:         limiter.Admit,
		Presence:      presence,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { // runs before the Limiter and Presence close
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	return &node{t: t, hub: h, srv: srv}
}

// dial performs the handshake as user of tenant.
func (n *node) dial(user, tenant string) (*websocket.Conn, *http.Response, error) {
	n.t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "tenant_id": tenant, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(hubSecret)
	if err != nil {
		n.t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Origin", n.srv.URL)
	h.Set("Authorization", "Bearer "+tok)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.srv.URL, "http"),
		&websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"wsgate.v1"}})
}

// connect dials and reads the welcome, failing the test otherwise.
func (n *node) connect(user, tenant string) *websocket.Conn {
	n.t.Helper()
	ws, _, err := n.dial(user, tenant)
	if err != nil {
		n.t.Fatalf("dial as %s: %v", user, err)
	}
	n.t.Cleanup(func() { ws.CloseNow() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, msg, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(msg), `"welcome"`) {
		n.t.Fatalf("first frame for %s: %q, %v", user, msg, err)
	}
	return ws
}

// presence polls the hub until room lists want.
func (n *node) presence(room string, want ...string) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := n.hub.Presence(context.Background(), room)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("Presence(%s) = %v, %v; want %v", room, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTwoHubsShareLimitsAndPresence runs two hubs, as two nodes behind a
// load balancer would, on one Redis: the per-user limit and presence span
// both.
func TestTwoHubsShareLimitsAndPresence(t *testing.T) {
	srv := redistest.Start(t)
	a, b := startNode(t, srv.Addr(), 2), startNode(t, srv.Addr(), 2)

	a.connect("alice", "acme")
	second := a.connect("alice", "acme")

	t.Run("user_at_the_limit_on_one_hub_gets_429_before_the_upgrade_on_the_other", func(t *testing.T) {
		ws, resp, err := b.dial("alice", "acme")
		if err == nil {
			ws.CloseNow()
			t.Fatal("third connection upgraded on hub b")
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("response %+v, want 429 with Retry-After", resp)
		}
		var body struct{ Code string }
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &body); err != nil || body.Code != "CONNECTION_LIMIT_EXCEEDED" {
			t.Fatalf("body %q: %v", raw, err)
		}
	})

	t.Run("presence_lists_users_of_both_hubs", func(t *testing.T) {
		b.connect("bob", "acme")
		a.presence("tenant:acme", "alice", "bob")
		b.presence("tenant:acme", "alice", "bob")
		b.presence("user:alice", "alice")
	})

	t.Run("a_closed_connection_frees_a_slot_on_the_other_hub", func(t *testing.T) {
		if err := second.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ws, resp, err := b.dial("alice", "acme")
			if err == nil {
				t.Cleanup(func() { ws.CloseNow() })
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(fmt.Errorf("slot not freed: %w (response %+v)", err, resp))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("presence_follows_disconnects", func(t *testing.T) {
		c := a.connect("carol", "acme")
		b.presence("tenant:acme", "alice", "bob", "carol")
		c.Close(websocket.StatusNormalClosure, "")
		b.presence("tenant:acme", "alice", "bob")
	})
}

// Presence is the store hub.EraseUser erases presence from.
var _ hub.PresenceEraser = (*redis.Presence)(nil)
