package main

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
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
)

// Every wait in these tests is bounded by this deadline rather than a sleep.
const readTimeout = 5 * time.Second

// maxFrames bounds every read loop: a test that does not find its frame
// among this many fails instead of spinning.
const maxFrames = 100

// testEnv is one chat server on a loopback port.
type testEnv struct {
	s      *server
	url    string // http://127.0.0.1:port
	origin string // the origin the page is served from
	secret []byte // the configured secret; nil in demo mode
	logs   *syncBuffer
	// httpClient dials the handshakes; nil means http.DefaultClient. A TLS
	// test sets one that trusts its certificate.
	httpClient *http.Client
}

// startServer runs newServer on 127.0.0.1:0. The listener exists before the
// server is built because the default origin allowlist is the server's own
// address.
func startServer(t *testing.T, mutate func(*config)) *testEnv {
	t.Helper()
	hs := httptest.NewUnstartedServer(http.NotFoundHandler())
	logs := &syncBuffer{}
	cfg := config{
		Addr: hs.Listener.Addr().String(),
		// Tests open many connections from one address; the throttle has a
		// test of its own.
		Throttle: guard.ThrottleOptions{Attempts: 10_000},
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := newServer(cfg)
	if err != nil {
		hs.Close()
		t.Fatalf("newServer: %v", err)
	}
	hs.Config.Handler = s
	hs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		_ = s.Shutdown(ctx) // already done by tests of shutdown itself
		hs.Close()
	})
	return &testEnv{s: s, url: hs.URL, origin: "http://" + cfg.Addr, secret: cfg.Secret, logs: logs}
}

// newHub builds the chat server without serving it and returns its hub,
// for tests of the handlers and the room policy through hubtest.
func newHub(t *testing.T) *hub.Hub {
	t.Helper()
	// Addr only names the page's origin here: nothing listens on it.
	s, err := newServer(config{Addr: "127.0.0.1:8080"})
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s.gw.Hub()
}

// token returns a valid token for user: a demo token, or one signed with
// the configured secret as an identity provider would.
func (e *testEnv) token(t *testing.T, user string) string {
	t.Helper()
	if e.secret == nil {
		tok, _, err := e.s.demoToken(user)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(e.secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial opens a WebSocket with the page's Origin unless h sets one ("" in h
// removes it) and the wsgate.v1 subprotocol plus any extra entries.
func (e *testEnv) dial(t *testing.T, h http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr := http.Header{"Origin": {e.origin}}
	for k, v := range h {
		if len(v) == 1 && v[0] == "" {
			hdr.Del(k)
			continue
		}
		hdr[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/ws", &websocket.DialOptions{
		HTTPClient:   e.httpClient,
		HTTPHeader:   hdr,
		Subprotocols: protocols,
	})
	if ws != nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

// connect dials as user with a bearer header and waits for the welcome.
func (e *testEnv) connect(t *testing.T, user string) *client {
	t.Helper()
	return e.connectWith(t, http.Header{"Authorization": {"Bearer " + e.token(t, user)}}, user)
}

func (e *testEnv) connectWith(t *testing.T, h http.Header, wantUser string, protocols ...string) *client {
	t.Helper()
	ws, resp, err := e.dial(t, h, append([]string{"wsgate.v1"}, protocols...)...)
	if err != nil {
		t.Fatalf("dial as %s: %v (%s)", wantUser, err, describe(resp))
	}
	if got := ws.Subprotocol(); got != "wsgate.v1" {
		t.Fatalf("subprotocol = %q, want wsgate.v1", got)
	}
	c := &client{t: t, ws: ws}
	w := c.next(func(f frame) bool { return f.Type == "welcome" })
	var data struct {
		UserID string `json:"userId"`
	}
	decode(t, w.Data, &data)
	if data.UserID != wantUser {
		t.Fatalf("welcome for %q, want %q", data.UserID, wantUser)
	}
	return c
}

// refusal is the JSON body of a handshake the server refused.
type refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func describe(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + strings.TrimSpace(string(b))
}

// frame is any server → client envelope.
type frame struct {
	Type    string          `json:"type"`
	ID      *uint64         `json:"id"`
	Event   string          `json:"event"`
	Room    string          `json:"room"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Offset  *uint64         `json:"offset"`
	Epoch   string          `json:"epoch"`
}

// client is a test WebSocket client. It is used by one goroutine.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	lastID  uint64
	backlog []frame // read while waiting for something else
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) read() frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("got a %v frame", typ)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// next returns the first frame, backlog included, for which match is true.
func (c *client) next(match func(frame) bool) frame {
	c.t.Helper()
	for i, f := range c.backlog {
		if match(f) {
			c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
			return f
		}
	}
	for range maxFrames {
		f := c.read()
		if match(f) {
			return f
		}
		c.backlog = append(c.backlog, f)
	}
	c.t.Fatalf("no matching frame among %d", maxFrames)
	return frame{}
}

// call sends msg with a fresh id and returns the ack or error answering it.
func (c *client) call(msg map[string]any) frame {
	c.t.Helper()
	c.lastID++
	id := c.lastID
	msg["id"] = id
	c.send(msg)
	return c.next(func(f frame) bool {
		return (f.Type == "ack" || f.Type == "error") && f.ID != nil && *f.ID == id
	})
}

func (c *client) event(name string, data any) frame {
	c.t.Helper()
	return c.call(map[string]any{"type": "event", "event": name, "data": data})
}

func (c *client) join(room string) frame {
	c.t.Helper()
	return c.call(map[string]any{"type": "join", "room": room})
}

// mustJoin joins room and fails the test unless the server acks.
func (c *client) mustJoin(room string) {
	c.t.Helper()
	if f := c.join(room); f.Type != "ack" {
		c.t.Fatalf("join %s: %s %s", room, f.Code, f.Message)
	}
}

// sync makes a round trip and returns every frame received before its
// answer. The memory broker delivers a broadcast to every local queue
// before the publishing handler returns, and each queue is FIFO, so a
// broadcast acked to its sender before sync started is in this list if it
// was delivered to c at all: "received nothing" is checked without a sleep.
func (c *client) sync() []frame {
	c.t.Helper()
	c.call(map[string]any{"type": "leave", "room": "conversation:00000000-0000-4000-8000-000000000000"})
	got := c.backlog
	c.backlog = nil
	return got
}

// shutdown shuts the server down while c reads, as a real client does:
// Shutdown waits for each client's answer to the close handshake. It
// returns c's close status and the frames c received before it.
func (e *testEnv) shutdown(t *testing.T, c *client) (websocket.StatusCode, []frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.s.Shutdown(ctx) }()
	code, frames := c.expectClose()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	return code, frames
}

// expectClose reads until the connection closes and returns its status.
func (c *client) expectClose() (websocket.StatusCode, []frame) {
	c.t.Helper()
	var seen []frame
	for range maxFrames {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		_, b, err := c.ws.Read(ctx)
		cancel()
		if err != nil {
			return websocket.CloseStatus(err), seen
		}
		var f frame
		_ = json.Unmarshal(b, &f)
		seen = append(seen, f)
	}
	c.t.Fatalf("connection still open after %d frames", maxFrames)
	return 0, nil
}

func decode(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer = testutil.SyncBuffer
