package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func TestRunRefusesBadStartup(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"short_secret_from_env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"WSGATE_JWT_SECRET": "too-short"}},
		{"wildcard_origins_from_env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"WSGATE_ORIGINS": "*"}},
		{"all_interfaces_without_origins", []string{"-addr", ":0"}, nil},
		{"unknown_flag", []string{"-secret", "x"}, nil},
		{"redis_url_with_another_scheme", []string{"-addr", "127.0.0.1:0", "-redis", "http://127.0.0.1:1"}, nil},
		{"unreachable_redis_from_env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}},
		{"short_relay_key", []string{"-addr", "127.0.0.1:0", "-redis", "redis://127.0.0.1:1"}, map[string]string{"WSGATE_REDIS_HMAC_KEY": "short"}},
		{"tls_key_without_cert", []string{"-addr", "127.0.0.1:0", "-tls-key", "key.pem"}, nil},
		{"tls_cert_without_key_from_env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"WSGATE_TLS_CERT": "cert.pem"}},
		{"tls_files_that_do_not_exist", []string{"-addr", "127.0.0.1:0", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, stderr strings.Builder
			// Each case fails before listening, so run returns at once.
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &out, &stderr, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("run started")
			}
			if out.Len() != 0 {
				t.Errorf("printed %q before failing", out.String())
			}
		})
	}
}

func TestRedisErrorsDoNotRepeatThePassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:hunter2hunter2@127.0.0.1:1/0",
		"redis://user:hunter2hunter2@127.0.0.1:1/not-a-db",
		"redis://user:hunter2hunter2@[::1%zone/0",
	} {
		_, err := newServer(config{Addr: "127.0.0.1:8081", RedisURL: u})
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %v", u, err)
		}
	}
}

func TestTokenSubcommand(t *testing.T) {
	env := map[string]string{"WSGATE_JWT_SECRET": testSecret}
	getenv := func(k string) string { return env[k] }
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"token", "-ttl", "10m", "alice"}, getenv, &out, &errOut, nil); err != nil {
		t.Fatalf("token: %v (%s)", err, errOut.String())
	}
	v, err := auth.NewJWT(auth.JWTOptions{HMACSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Authenticate(context.Background(), strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("the printed token does not verify: %v", err)
	}
	if id.UserID != "alice" || id.TenantID != "acme" || !id.HasRole(adminRole) || time.Until(id.ExpiresAt) > 10*time.Minute {
		t.Errorf("identity %+v", id)
	}

	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"without_a_secret":     {[]string{"alice"}, nil},
		"with_a_short_secret":  {[]string{"alice"}, map[string]string{"WSGATE_JWT_SECRET": "short"}},
		"for_an_unknown_user":  {[]string{"mallory"}, env},
		"without_a_user":       {nil, env},
		"with_a_negative_ttl":  {[]string{"-ttl", "-1h", "alice"}, env},
		"with_two_users":       {[]string{"alice", "root"}, env},
		"with_an_unknown_flag": {[]string{"-role", "SUPER_ADMIN", "alice"}, env},
	} {
		t.Run("refused_"+name, func(t *testing.T) {
			var out, errOut strings.Builder
			if err := run(context.Background(), append([]string{"token"}, tc.args...), func(k string) string { return tc.env[k] }, &out, &errOut, nil); err == nil || out.Len() != 0 {
				t.Fatalf("err %v, printed %q", err, out.String())
			}
		})
	}
}

// TestTwoInstancesShareOneRedis is the README's walkthrough: two instances
// on one Redis, a notification published on one reaching a user connected
// to the other, limits and presence spanning both, and an instance with
// another secret receiving nothing.
func TestTwoInstancesShareOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	shared := func(c *config) {
		c.Secret = []byte(testSecret)
		c.RedisURL = "redis://" + srv.Addr() + "/0"
	}
	a, b := startServer(t, shared), startServer(t, shared)
	stranger := startServer(t, func(c *config) {
		c.Secret = []byte("another-secret-another-secret-xx")
		c.RedisURL = "redis://" + srv.Addr()
	})
	bobOnB, aliceOnA, carolOnB := b.connect(t, "bob"), a.connect(t, "alice"), b.connect(t, "carol")
	carolOnStranger := stranger.connect(t, "carol")

	id := a.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "from A"})
	if got := received(t, bobOnB.nextEvent(eventNew)); got.ID != id || got.From != "alice" {
		t.Fatalf("bob on B got %+v", got)
	}
	// A tenant notification from B reaches acme on A, and not globex on B.
	b.mustNotify(t, "root", map[string]any{"target": "tenant", "id": "acme", "title": "from B"})
	for _, c := range []*client{aliceOnA, bobOnB} {
		if got := received(t, c.nextEvent(eventNew)); got.Title != "from B" {
			t.Errorf("%s got %+v", c.user, got)
		}
	}
	// A mark-read on B reaches bob's tab on A.
	bobOnA := a.connect(t, "bob")
	if f := bobOnB.event(eventMarkRead, map[string]any{"notificationId": id}); f.Type != "ack" {
		t.Fatalf("mark-read: %+v", f)
	}
	var read readNotice
	decode(t, bobOnA.nextEvent(eventRead).Data, &read)
	if read.NotificationID != id {
		t.Errorf("bob on A got %+v", read)
	}

	// Redis delivers in order per node: once a later notification has
	// reached carol on B, any earlier one meant for her would have too.
	b.mustNotify(t, "root", map[string]any{"target": "user", "id": "carol", "title": "marker"})
	for _, f := range drainUntil(t, carolOnB, "marker") {
		t.Errorf("carol received %s", f.Data)
	}
	// The stranger's relay key differs: the message to carol is rejected.
	eventually(t, "the stranger rejects the relayed notification", func() error {
		if n := stranger.metric(t, "wsgate_redis_rejected_total"); n < 1 {
			return fmt.Errorf("rejected %v", n)
		}
		return nil
	})
	carolOnStranger.expectNoEvent("relay of another deployment")

	// Presence spans the instances: A lists bob, who is also on B.
	eventually(t, "A sees acme's users on both instances", func() error {
		if status, users := a.online(t, "alice", "acme"); status != 200 || users != "alice,bob" {
			return fmt.Errorf("%d %q", status, users)
		}
		return nil
	})

	// So does the per-user limit: bob holds two connections, three more on
	// A make five, and B refuses the sixth before the upgrade.
	var last *client
	for range 3 {
		last = a.connect(t, "bob")
	}
	_, resp, err := b.dial(t, http.Header{"Authorization": {"Bearer " + b.token(t, "bob")}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(describe(resp), "CONNECTION_LIMIT_EXCEEDED") {
		t.Fatalf("sixth connection on B: %v %s, want 429 CONNECTION_LIMIT_EXCEEDED", err, describe(resp))
	}
	last.ws.CloseNow()
	eventually(t, "B admits bob once a slot on A is free", func() error {
		ws, resp, err := b.dial(t, http.Header{"Authorization": {"Bearer " + b.token(t, "bob")}})
		if err != nil {
			return fmt.Errorf("%v %s", err, describe(resp))
		}
		ws.CloseNow()
		return nil
	})

	for _, e := range []*testEnv{a, b} {
		if code, _ := e.get(t, "/readyz"); code != 200 {
			t.Errorf("readyz %d", code)
		}
		if n := e.metric(t, "wsgate_redis_published_total"); n == 0 {
			t.Errorf("%s: no Redis publish counted", e.url)
		}
	}
}

// drainUntil reads c until a notification titled title and returns the
// frames before it.
func drainUntil(t *testing.T, c *client, title string) []frame {
	t.Helper()
	var before []frame
	for range maxFrames {
		f := c.nextEvent(eventNew)
		if received(t, f).Title == title {
			return before
		}
		before = append(before, f)
	}
	t.Fatalf("%s: no %q among %d notifications", c.user, title, maxFrames)
	return nil
}

// eventually polls cond every 10ms until it returns nil or readTimeout
// passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	testutil.EventuallyNil(t, readTimeout, what, cond)
}

// TestRedisOutage: while Redis is down the instance says so — 503 from
// the API, /readyz and the handshake — keeps its connections, and serves
// them again once Redis is back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	e := startServer(t, func(c *config) {
		c.Secret = []byte(testSecret)
		c.RedisURL = "redis://" + srv.Addr()
	})
	bob := e.connect(t, "bob")
	srv.Kill()
	eventually(t, "readiness reports the outage", func() error {
		if code, body := e.get(t, "/readyz"); code != http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if status, resp := e.notify(t, "root", map[string]any{"target": "user", "id": "bob", "title": "lost"}); status != 503 || resp["code"] != "UNAVAILABLE" {
		t.Errorf("publishing during the outage: %d %v, want 503", status, resp)
	}
	_, resp, err := e.dial(t, http.Header{"Authorization": {"Bearer " + e.token(t, "carol")}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("connecting during the outage: %v %s, want 503", err, describe(resp))
	}

	srv.Restart()
	eventually(t, "ready again", func() error {
		if code, body := e.get(t, "/readyz"); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	// The first publishes after the restart may still fail while the
	// client reconnects; an operator's retry is what 503 asks for.
	var id string
	eventually(t, "publishing works again", func() error {
		status, resp := e.notify(t, "root", map[string]any{"target": "user", "id": "bob", "title": "back"})
		if status != http.StatusAccepted {
			return fmt.Errorf("%d %v", status, resp)
		}
		id = resp["id"]
		return nil
	})
	if got := received(t, bob.nextEvent(eventNew)); got.ID != id {
		t.Errorf("bob got %+v, want %s", got, id)
	}
}
