package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/internal/testutil"
)

// Every wait in these tests is bounded by this deadline rather than a sleep.
const readTimeout = 5 * time.Second

// maxFrames bounds every read loop: a test that does not find its frame
// among this many fails instead of spinning.
const maxFrames = 200

// testEnv is one notifications server on a loopback port.
type testEnv struct {
	s      *server
	url    string // http://127.0.0.1:port
	origin string
	logs   *syncBuffer
	// httpClient makes the requests and handshakes; nil means
	// http.DefaultClient. A TLS test sets one that trusts its certificate.
	httpClient *http.Client
	// issuer, when set, signs the tokens of seeded users instead of s, for
	// a server that runs in a command the test cannot reach into.
	issuer *tokenIssuer
}

// startServer runs newServer on 127.0.0.1:0 in demo mode unless mutate sets
// a secret. The listener exists before the server is built because the
// default origin allowlist is the server's own address.
func startServer(t *testing.T, mutate func(*config)) *testEnv {
	t.Helper()
	hs := httptest.NewUnstartedServer(http.NotFoundHandler())
	logs := &syncBuffer{}
	cfg := config{
		Addr: hs.Listener.Addr().String(),
		// Tests open many connections and requests from one address; the
		// throttles have tests of their own.
		Throttle: guard.ThrottleOptions{Attempts: 10_000},
		APIRate:  guard.ThrottleOptions{Attempts: 10_000},
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
	return &testEnv{s: s, url: hs.URL, origin: "http://" + cfg.Addr, logs: logs}
}

// token returns a token for a seeded user: a demo token, or one signed with
// the configured secret as an identity provider would.
func (e *testEnv) token(t *testing.T, user string) string {
	t.Helper()
	if e.issuer != nil {
		a, ok := newDirectory().lookup(context.Background(), user)
		if !ok {
			t.Fatalf("%q is not seeded", user)
		}
		tok, _, err := e.issuer.sign(a)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if e.s.demo {
		tok, err := e.s.demoToken(user)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a, ok := e.s.dir.lookup(context.Background(), user)
	if !ok {
		t.Fatalf("%q is not seeded", user)
	}
	tok, _, err := e.s.tokens.sign(a)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial opens a WebSocket with the server's own Origin unless h sets one (""
// in h removes it).
func (e *testEnv) dial(t *testing.T, h http.Header) (*websocket.Conn, *http.Response, error) {
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
		Subprotocols: []string{"wsgate.v1"},
	})
	if ws != nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

// connect dials as a seeded user with a bearer header and waits for the
// welcome.
func (e *testEnv) connect(t *testing.T, user string) *client {
	t.Helper()
	return e.connectWith(t, user, e.token(t, user))
}

// connectAs dials as an account the directory does not know, with a token
// signed by the server's secret as an identity provider would.
func (e *testEnv) connectAs(t *testing.T, a account) *client {
	t.Helper()
	tok, _, err := e.s.tokens.sign(a)
	if err != nil {
		t.Fatal(err)
	}
	return e.connectWith(t, a.ID, tok)
}

func (e *testEnv) connectWith(t *testing.T, user, token string) *client {
	t.Helper()
	ws, resp, err := e.dial(t, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatalf("dial as %s: %v (%s)", user, err, describe(resp))
	}
	c := &client{t: t, ws: ws, user: user}
	w := c.next(func(f frame) bool { return f.Type == "welcome" })
	var data struct {
		ConnectionID string `json:"connectionId"`
		UserID       string `json:"userId"`
	}
	decode(t, w.Data, &data)
	if data.UserID != user {
		t.Fatalf("welcome for %q, want %q", data.UserID, user)
	}
	c.connID, c.welcomeData = data.ConnectionID, w.Data
	// The hub queues the welcome before it joins the automatic rooms and
	// reads messages only once they are joined: the first answer proves
	// user:{id} and tenant:{id} receive.
	c.sync()
	return c
}

// post sends body to POST /api/notifications with token (none when "") and
// returns the status and the decoded JSON answer.
func (e *testEnv) post(t *testing.T, token, contentType string, body []byte) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/api/notifications", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(t, req)
}

// notifyWithKey posts a JSON notification as user with an
// Idempotency-Key header.
func (e *testEnv) notifyWithKey(t *testing.T, user, key string, body map[string]any) (int, map[string]string) {
	t.Helper()
	req := jsonRequest(t, e.url+"/api/notifications", body)
	req.Header.Set("Authorization", "Bearer "+e.token(t, user))
	req.Header.Set("Idempotency-Key", key)
	return e.do(t, req)
}

// notify posts a JSON notification as user.
func (e *testEnv) notify(t *testing.T, user string, body map[string]any) (int, map[string]string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return e.post(t, e.token(t, user), "application/json", b)
}

// mustNotify posts as user and fails the test unless the API accepts;
// it returns the notification id.
func (e *testEnv) mustNotify(t *testing.T, user string, body map[string]any) string {
	t.Helper()
	status, resp := e.notify(t, user, body)
	if status != http.StatusAccepted || resp["id"] == "" {
		t.Fatalf("POST as %s %v: %d %v, want 202 with an id", user, body, status, resp)
	}
	return resp["id"]
}

// jsonRequest builds a POST of v as JSON, without credentials.
func jsonRequest(t *testing.T, url string, v any) *http.Request {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// online asks GET /api/tenants/{tenant}/online as caller and returns the
// status and the users, comma-separated.
func (e *testEnv) online(t *testing.T, caller, tenant string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+"/api/tenants/"+url.PathEscape(tenant)+"/online", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token(t, caller))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body onlineResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET online: %d with a body that is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, strings.Join(body.Users, ",")
}

func (e *testEnv) do(t *testing.T, req *http.Request) (int, map[string]string) {
	t.Helper()
	resp, err := cmp.Or(e.httpClient, http.DefaultClient).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: %d with a body that is not a JSON object: %q", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", req.Method, req.URL.Path, ct)
	}
	return resp.StatusCode, out
}

// get returns the status and body of a GET.
func (e *testEnv) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric scrapes /metrics and returns the value of the sample named
// exactly name (with its labels, if any), or 0 when it is absent.
func (e *testEnv) metric(t *testing.T, name string) float64 {
	t.Helper()
	status, body := e.get(t, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("sample %q: %v", sc.Text(), err)
			}
			return v
		}
	}
	return 0
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
	t           *testing.T
	ws          *websocket.Conn
	user        string
	connID      string
	welcomeData json.RawMessage
	lastID      uint64
	backlog     []frame // read while waiting for something else
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
		c.t.Fatalf("%s: read: %v", c.user, err)
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
	c.t.Fatalf("%s: no matching frame among %d", c.user, maxFrames)
	return frame{}
}

// nextEvent waits for the next event named event.
func (c *client) nextEvent(event string) frame {
	c.t.Helper()
	return c.next(func(f frame) bool { return f.Type == "event" && f.Event == event })
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

// sync makes a round trip and returns every frame received before its
// answer. The in-memory broker queues a broadcast to every local
// connection before the publishing call returns, and each queue is FIFO,
// so a notification the API accepted before sync started is in this list
// if it was delivered to c at all: "received nothing" needs no sleep.
func (c *client) sync() []frame {
	c.t.Helper()
	c.call(map[string]any{"type": "leave", "room": "none"})
	got := c.backlog
	c.backlog = nil
	return got
}

// expectNoEvent fails if c received any event before a sync round trip.
func (c *client) expectNoEvent(why string) {
	c.t.Helper()
	for _, f := range c.sync() {
		if f.Type == "event" {
			c.t.Errorf("%s received %s %s (%s)", c.user, f.Event, f.Data, why)
		}
	}
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
