package hub_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
)

func TestHandshake(t *testing.T) {
	e := newEnv(t, nil)
	good := token(t, claims{sub: "alice"})
	cases := []struct {
		name   string
		header func() http.Header
		proto  []string
		status int
		code   string
	}{
		{"bearer_header_is_accepted", func() http.Header { return e.header(good) }, nil, 101, ""},
		{"subprotocol_token_is_accepted", func() http.Header { return e.header("") }, []string{"wsgate.v1", "wsgate.bearer." + good}, 101, ""},
		{"missing_token_is_401", func() http.Header { return e.header("") }, nil, 401, "UNAUTHORIZED"},
		{"bad_signature_is_401", func() http.Header { return e.header(good[:len(good)-2] + "xx") }, nil, 401, "UNAUTHORIZED"},
		{"expired_token_is_401", func() http.Header { return e.header(token(t, claims{sub: "alice", ttl: -time.Hour})) }, nil, 401, "UNAUTHORIZED"},
		{"foreign_origin_is_403", func() http.Header {
			h := e.header(good)
			h.Set("Origin", "https://evil.example")
			return h
		}, nil, 403, "FORBIDDEN"},
		{"lookalike_origin_is_403", func() http.Header {
			h := e.header(good)
			h.Set("Origin", e.srv.URL+".evil.net")
			return h
		}, nil, 403, "FORBIDDEN"},
		{"missing_origin_is_403", func() http.Header {
			h := e.header(good)
			h.Del("Origin")
			return h
		}, nil, 403, "FORBIDDEN"},
		{"null_origin_is_403", func() http.Header {
			h := e.header(good)
			h.Set("Origin", "null")
			return h
		}, nil, 403, "FORBIDDEN"},
		{"missing_subprotocol_is_400", func() http.Header { return e.header(good) }, []string{"other"}, 400, "BAD_REQUEST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ws, resp, err := e.dialRaw(ctx, tc.header(), tc.proto...)
			if tc.status == 101 {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer ws.CloseNow()
				if ws.Subprotocol() != "wsgate.v1" {
					t.Fatalf("subprotocol = %q, want wsgate.v1 (never the token)", ws.Subprotocol())
				}
				return
			}
			if err == nil {
				ws.CloseNow()
				t.Fatal("upgrade succeeded, want refusal")
			}
			assertRefusal(t, resp, tc.status, tc.code)
		})
	}
}

func assertRefusal(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp == nil {
		t.Fatal("no HTTP response")
	}
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d", resp.StatusCode, status)
	}
	var body struct{ Code, Message string }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	if body.Code != code {
		t.Fatalf("code = %q, want %q", body.Code, code)
	}
}

func TestWelcomeCarriesIdentity(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.PingInterval = 7 * time.Second
		o.PongTimeout = 5 * time.Second
		o.HandlerTimeout = time.Second
	})
	c := e.connect(claims{sub: "alice", tenant: "acme"})
	var w struct {
		ConnectionID string `json:"connectionId"`
		UserID       string `json:"userId"`
		ExpiresAt    int64  `json:"expiresAt"`
		HeartbeatMs  int64  `json:"heartbeatMs"`
	}
	if err := json.Unmarshal(c.welcome.Data, &w); err != nil {
		t.Fatal(err)
	}
	if w.UserID != "alice" || w.ConnectionID == "" || w.HeartbeatMs != 7000 || w.ExpiresAt < time.Now().Unix() {
		t.Fatalf("welcome = %+v", w)
	}
}

func TestUserConnectionLimitAnswersBeforeUpgrade(t *testing.T) {
	var limits *guard.Limits
	e := newEnv(t, func(o *hub.Options) {
		o.Admit = func(ctx context.Context, user string) (func(), error) { return limits.Admit(ctx, user) }
	})
	// guard and the hub log into the same sink: the refusal is one line.
	limits, err := guard.NewLimits(guard.LimitsOptions{PerUser: 2, Logger: slog.New(slog.NewJSONHandler(e.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.connect(claims{sub: "bob"})
	second := e.connect(claims{sub: "bob"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := e.dialRaw(ctx, e.header(token(t, claims{sub: "bob"})))
	if err == nil {
		t.Fatal("third connection upgraded, want 429")
	}
	assertRefusal(t, resp, http.StatusTooManyRequests, "CONNECTION_LIMIT_EXCEEDED")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	if n := strings.Count(e.log.String(), `"event":"user_connection_limit"`); n != 1 {
		t.Fatalf("the refusal was logged %d times, want once:\n%s", n, e.log.String())
	}
	e.connect(claims{sub: "carol"}) // other users are unaffected

	second.ws.Close(websocket.StatusNormalClosure, "")
	eventually(t, "bob's slot to be released", func() bool {
		ws, _, err := e.dialRaw(ctx, e.header(token(t, claims{sub: "bob"})))
		if err != nil {
			return false
		}
		ws.CloseNow()
		return true
	})
}

func TestFirstMessageAuth(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.FirstMessageAuth = true
		o.AuthTimeout = 300 * time.Millisecond
	})
	dial := func(t *testing.T) *client {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, _, err := e.dialRaw(ctx, e.header(""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		return &client{t: t, ws: ws}
	}
	t.Run("valid_auth_message_gets_the_welcome_then_its_ack", func(t *testing.T) {
		c := dial(t)
		c.send(map[string]any{"type": "auth", "id": 1, "data": map[string]string{"token": token(t, claims{sub: "alice"})}})
		if f := c.next(); f.Type != "welcome" {
			t.Fatalf("got %+v, want the welcome first", f)
		}
		if f := c.next(); f.Type != "ack" || f.ID == nil || *f.ID != 1 {
			t.Fatalf("got %+v, want ack 1", f)
		}
	})
	t.Run("silence_closes_with_4001", func(t *testing.T) {
		c := dial(t)
		if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseUnauthorized) {
			t.Fatalf("close = %d, want 4001", got)
		}
	})
	t.Run("other_first_message_is_refused", func(t *testing.T) {
		c := dial(t)
		c.send(map[string]any{"type": "event", "event": "x"})
		if f := c.next(); f.Type != "error" || f.Code != "UNAUTHORIZED" {
			t.Fatalf("got %+v, want UNAUTHORIZED", f)
		}
		if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseUnauthorized) {
			t.Fatalf("close = %d, want 4001", got)
		}
	})
	t.Run("invalid_token_is_refused", func(t *testing.T) {
		c := dial(t)
		c.send(map[string]any{"type": "auth", "data": map[string]string{"token": "a.b.c"}})
		if f := c.next(); f.Code != "UNAUTHORIZED" {
			t.Fatalf("got %+v, want UNAUTHORIZED", f)
		}
		if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseUnauthorized) {
			t.Fatalf("close = %d, want 4001", got)
		}
	})
	t.Run("expired_token_says_so", func(t *testing.T) {
		c := dial(t)
		c.send(map[string]any{"type": "auth", "data": map[string]string{"token": token(t, claims{sub: "a", ttl: -time.Hour})}})
		if f := c.next(); f.Code != "TOKEN_EXPIRED" {
			t.Fatalf("got %+v, want TOKEN_EXPIRED", f)
		}
	})
}

func TestSecurityLogNeverContainsTokens(t *testing.T) {
	e := newEnv(t, nil)
	tok := token(t, claims{sub: "alice", tenant: "acme"})
	c := e.connect(claims{sub: "alice", tenant: "acme"})
	c.send(map[string]any{"type": "join", "room": "tenant:other"})
	c.next()
	c.ws.Close(websocket.StatusNormalClosure, "")
	eventually(t, "disconnect log", func() bool { return strings.Contains(e.log.String(), `"msg":"disconnect"`) })
	logs := e.log.String()
	for _, want := range []string{`"msg":"connect"`, `"msg":"join_forbidden"`, `"conn_id"`, `"user":"alice"`, `"tenant":"acme"`, `"ip":"127.0.0.1"`, `"reason":"client_closed"`, `"duration_ms"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	sig := tok[strings.LastIndex(tok, ".")+1:]
	if strings.Contains(logs, sig) {
		t.Fatal("log contains the token")
	}
}

func TestRequestIDIsKeptInTheLog(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct{ id, want string }{
		{"req-42.abc", `"request_id":"req-42.abc"`},
		{"bad id<script>", ""},
	} {
		h := e.header(token(t, claims{sub: "alice"}))
		h.Set("X-Request-ID", tc.id)
		ws, _, err := e.dialRaw(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		ws.CloseNow()
	}
	eventually(t, "two connect lines", func() bool { return strings.Count(e.log.String(), `"msg":"connect"`) == 2 })
	logs := e.log.String()
	if !strings.Contains(logs, `"request_id":"req-42.abc"`) {
		t.Fatalf("request id missing:\n%s", logs)
	}
	if strings.Contains(logs, `bad`) {
		t.Fatal("malformed request id was logged")
	}
}

func TestReadinessFollowsTheBroker(t *testing.T) {
	broker := memory.New()
	e := newEnv(t, func(o *hub.Options) { o.Broker = broker })
	get := func() int {
		rec := httptest.NewRecorder()
		e.hub.ReadinessHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code
	}
	if get() != http.StatusOK {
		t.Fatal("not ready with a healthy broker")
	}
	_ = broker.Close()
	if got := get(); got != http.StatusServiceUnavailable {
		t.Fatalf("readiness = %d with the broker down, want 503", got)
	}
}
