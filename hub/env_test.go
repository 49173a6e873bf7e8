package hub_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
)

var testSecret = []byte("test-secret-that-is-at-least-32-bytes-long!")

// env is one hub served over loopback with a real JWT authenticator.
type env struct {
	t   testing.TB
	hub *hub.Hub
	srv *httptest.Server
	log *syncBuffer
}

// newEnv starts a hub; configure adjusts its options and may register
// handlers through the returned hub afterwards.
func newEnv(t testing.TB, configure func(*hub.Options)) *env {
	t.Helper()
	return startEnv(t, false, configure)
}

// newTLSEnv is newEnv serving over crypto/tls on loopback; its clients
// trust the test certificate.
func newTLSEnv(t testing.TB, configure func(*hub.Options)) *env {
	t.Helper()
	return startEnv(t, true, configure)
}

func startEnv(t testing.TB, useTLS bool, configure func(*hub.Options)) *env {
	t.Helper()
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts := hub.Options{
		Authenticator: authn,
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	return &env{t: t, hub: h, srv: srv, log: logs}
}

type claims struct {
	sub, tenant string
	roles       []string
	ttl         time.Duration
}

func token(t testing.TB, c claims) string {
	t.Helper()
	if c.ttl == 0 {
		c.ttl = time.Hour
	}
	mc := jwt.MapClaims{"sub": c.sub, "exp": time.Now().Add(c.ttl).Unix()}
	if c.tenant != "" {
		mc["tenant_id"] = c.tenant
	}
	if c.roles != nil {
		mc["roles"] = c.roles
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) wsURL() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") }

// httpClient is the client dials use: the test server's own, which trusts
// its certificate when it serves TLS.
func (e *env) httpClient() *http.Client { return e.srv.Client() }

// header is a same-origin handshake header carrying a bearer token.
func (e *env) header(tok string) http.Header {
	h := http.Header{}
	h.Set("Origin", e.srv.URL)
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return h
}

// dialRaw performs the handshake and returns the connection or the HTTP
// response of a refusal.
func (e *env) dialRaw(ctx context.Context, h http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	if subprotocols == nil {
		subprotocols = []string{"wsgate.v1"}
	}
	return websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{HTTPHeader: h, Subprotocols: subprotocols, HTTPClient: e.httpClient()})
}

// connect dials as the user of c and consumes the welcome.
func (e *env) connect(c claims) *client {
	e.t.Helper()
	return e.connectWith(e.header(token(e.t, c)))
}

// connectWith dials with the handshake header h and consumes the welcome.
func (e *env) connectWith(h http.Header) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := e.dialRaw(ctx, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial: %v (status %d)", err, status)
	}
	cl := &client{t: e.t, ws: ws}
	e.t.Cleanup(func() { ws.CloseNow() })
	w := cl.next()
	if w.Type != "welcome" {
		e.t.Fatalf("first frame = %+v, want welcome", w)
	}
	cl.welcome = w
	return cl
}

// frame is a decoded server frame.
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

type client struct {
	t       testing.TB
	ws      *websocket.Conn
	welcome frame
}

func (c *client) connID() string {
	var d struct {
		ConnectionID string `json:"connectionId"`
	}
	_ = json.Unmarshal(c.welcome.Data, &d)
	return d.ConnectionID
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

// next reads one frame, failing the test after 5 s.
func (c *client) next() frame {
	c.t.Helper()
	f, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) read(d time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("server sent non-JSON %q", b)
	}
	return f, nil
}

// closeStatus reads until the connection ends and returns its close code.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, err := c.read(time.Until(deadline))
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
	c.t.Fatal("connection did not close")
	return 0
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer = testutil.SyncBuffer
