package adversarial

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// Wait bounds every wait of the harness: generous for a loaded CI machine,
// and never reached by an attack that is refused as it should be.
const Wait = 10 * time.Second

// Defaults of Config.
const (
	// DefaultOrigin is the one page origin a server allows by default.
	DefaultOrigin = "https://app.example.com"
	// DefaultReadHeaderTimeout bounds how long a client may take to send
	// its request headers.
	DefaultReadHeaderTimeout = time.Second
	// GlobalRole is the role of the global room.
	GlobalRole = "admin"
)

// secret is the HS256 secret of servers that do not set Config.JWT.
var secret = []byte("adversarial-secret-0123456789abcdef")

// Config describes the server an attack runs against. The zero value is a
// server with the library's defaults: HS256 tokens, one allowed origin, a
// throttle generous enough for a test's own handshakes, five connections
// per user.
type Config struct {
	// JWT replaces the HS256 authenticator, for example with an RS256
	// public key. Default: HS256 with the harness secret (see Token).
	JWT *auth.JWTOptions
	// Origins is the origin allowlist. Default: DefaultOrigin only.
	Origins []string
	// HubOriginCheck leaves guard's origin allowlist out and the hub's
	// CheckOrigin unset, so that the hub's own default check answers, as
	// in a service that embeds the hub without an allowlist; Dial's
	// default origin is then the server's own loopback URL. Default false.
	HubOriginCheck bool
	// Throttle is the handshake throttle. Default: 10,000 attempts per
	// minute, so that only attacks on the throttle meet it.
	Throttle guard.ThrottleOptions
	// Broker carries broadcasts between servers. Default: in memory.
	Broker adapter.Broker
	// ReadHeaderTimeout of the http.Server. Default
	// DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// Hub adjusts the hub options last. Default: none.
	Hub func(*hub.Options)
	// Logger receives the server's and the security log. Default: discard.
	Logger *slog.Logger
}

// Server is a wsgate endpoint at /ws on a loopback port. It is shut down
// when the test ends.
type Server struct {
	// URL is http://127.0.0.1:port.
	URL string
	// Addr is 127.0.0.1:port.
	Addr string
	// Origin is the allowed page origin that Dial sends by default.
	Origin string
	// Hub is the server's hub, for broadcasts.
	Hub *hub.Hub
}

// Start builds and serves a server for cfg, and fails the test if it
// cannot.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	jwtOpts := auth.JWTOptions{HMACSecret: secret}
	if cfg.JWT != nil {
		jwtOpts = *cfg.JWT
	}
	verifier, err := auth.NewJWT(jwtOpts)
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	if len(cfg.Origins) == 0 {
		cfg.Origins = []string{DefaultOrigin}
	}
	if cfg.HubOriginCheck && len(cfg.Origins) != 1 {
		t.Fatal("adversarial: HubOriginCheck uses no origin allowlist")
	}
	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: cfg.Origins, Logger: log})
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	if cfg.Throttle.Attempts == 0 {
		cfg.Throttle.Attempts = 10_000
	}
	cfg.Throttle.Logger = log
	throttle, err := guard.NewThrottle(cfg.Throttle)
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	limits, err := guard.NewLimits(guard.LimitsOptions{Logger: log})
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	policy, err := room.NewPolicy(room.PolicyOptions{GlobalRole: GlobalRole})
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	opts := hub.Options{
		Authenticator: verifier,
		CheckOrigin:   origins.Check,
		Admit:         limits.Admit,
		ClientIP:      func(r *http.Request) string { return throttle.ClientIP(r).String() },
		Rooms:         policy,
		GlobalRole:    GlobalRole,
		Broker:        cfg.Broker,
		Logger:        log,
	}
	guards := []func(http.Handler) http.Handler{throttle.Middleware, origins.Middleware, limits.Middleware}
	if cfg.HubOriginCheck {
		opts.CheckOrigin = nil
		guards = []func(http.Handler) http.Handler{throttle.Middleware, limits.Middleware}
	}
	if cfg.Hub != nil {
		cfg.Hub(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", guard.Chain(h, guards...))
	addr := serve(t, mux, h, cfg.ReadHeaderTimeout, log)
	origin := cfg.Origins[0]
	if cfg.HubOriginCheck {
		origin = "http://" + addr
	}
	return &Server{URL: "http://" + addr, Addr: addr, Origin: origin, Hub: h}
}

// serve serves handler on a loopback port until the test ends, then shuts
// the hub and the server down, and returns the address.
func serve(t testing.TB, handler http.Handler, h *hub.Hub, readHeaderTimeout time.Duration, log *slog.Logger) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	if readHeaderTimeout == 0 {
		readHeaderTimeout = DefaultReadHeaderTimeout
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, MaxHeaderBytes: 32 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Wait)
		defer cancel()
		_ = h.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
		<-served
	})
	return l.Addr().String()
}

// Token signs claims with the harness secret (HS256), for servers that do
// not set Config.JWT. sub defaults to "mallory" and exp to an hour from
// now; a claim set to nil is left out.
func Token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodHS256, secret, claims)
}

// Sign signs claims, with Token's defaults, using any method and key: for
// tokens that a server must refuse.
func Sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("adversarial: sign: %v", err)
	}
	return tok
}

// Handshake is one WebSocket upgrade attempt.
type Handshake struct {
	// Token is sent as "Authorization: Bearer <Token>"; "" sends none.
	Token string
	// Origin is the Origin header. Default: the server's Origin; NoOrigin
	// sends none.
	Origin string
	// Header holds extra request headers.
	Header http.Header
	// Subprotocols offered. Default: wsgate.v1.
	Subprotocols []string
	// Host replaces the Host header: a DNS-rebinding page's requests carry
	// the attacker's name. Only DialRaw can send it (a client library sends
	// the URL's host); Dial fails the test when it is set. Default: the
	// server's address.
	Host string
}

// NoOrigin as Handshake.Origin sends no Origin header.
const NoOrigin = "-"

// Dial attempts the handshake. It returns the connection when the server
// upgraded, and the response either way (nil only when there was none).
// The connection is closed when the test ends.
func (s *Server) Dial(t testing.TB, h Handshake) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if h.Host != "" {
		t.Fatal("adversarial: Dial cannot send another Host; use DialRaw")
	}
	hdr := http.Header{}
	for k, v := range h.Header {
		hdr[k] = v
	}
	switch h.Origin {
	case "":
		hdr.Set("Origin", s.Origin)
	case NoOrigin:
	default:
		hdr.Set("Origin", h.Origin)
	}
	if h.Token != "" {
		hdr.Set("Authorization", "Bearer "+h.Token)
	}
	protocols := h.Subprotocols
	if protocols == nil {
		protocols = []string{"wsgate.v1"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: hdr, Subprotocols: protocols})
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// ExpectRefusal checks that a handshake was refused before the upgrade
// with status and the JSON body's code.
func ExpectRefusal(t testing.TB, resp *http.Response, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the handshake succeeded; want %d %s", status, code)
	}
	if resp == nil {
		t.Fatalf("no response (%v); want %d %s", err, status, code)
	}
	var body struct{ Code, Message string }
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if jerr := json.Unmarshal(b, &body); resp.StatusCode != status || jerr != nil || body.Code != code {
		t.Fatalf("refusal %d %q; want %d with code %s", resp.StatusCode, b, status, code)
	}
}

// Conn is an upgraded connection whose welcome has been read.
type Conn struct {
	t  testing.TB
	WS *websocket.Conn
	id uint64 // last message id sent
}

// Connect upgrades with token and the server's origin, and reads the
// welcome; any failure fails the test.
func (s *Server) Connect(t testing.TB, token string) *Conn {
	t.Helper()
	ws, resp, err := s.Dial(t, Handshake{Token: token})
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("adversarial: connect: %v (%s)", err, status)
	}
	c := &Conn{t: t, WS: ws}
	if f := c.Read(); f.Type != "welcome" {
		t.Fatalf("adversarial: first frame %+v, want the welcome", f)
	}
	return c
}

// Frame is any server → client envelope.
type Frame struct {
	Type    string          `json:"type"`
	ID      *uint64         `json:"id"`
	Event   string          `json:"event"`
	Room    string          `json:"room"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

// String returns the frame as JSON, for failure messages.
func (f Frame) String() string {
	b, err := json.Marshal(f)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Send writes v as one JSON text frame.
func (c *Conn) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendRaw(websocket.MessageText, b)
}

// SendRaw writes one frame of type typ holding b, as it is.
func (c *Conn) SendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := c.WS.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("adversarial: write: %v", err)
	}
}

// Read returns the next frame, failing the test after Wait or if the
// connection ends.
func (c *Conn) Read() Frame {
	c.t.Helper()
	f, err := c.ReadWithin(Wait)
	if err != nil {
		c.t.Fatalf("adversarial: read: %v", err)
	}
	return f
}

// ReadWithin returns the next frame, or the error that ended the wait: the
// close, or the deadline. A deadline that passes ends the connection too
// (coder/websocket closes it), so "nothing arrives" is better shown by a
// marker sent afterwards and read next.
func (c *Conn) ReadWithin(d time.Duration) (Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.WS.Read(ctx)
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, errors.New("frame is not JSON: " + strconv.Quote(string(b)))
	}
	return f, nil
}

// Call sends msg with a fresh id and returns the ack or error answering it,
// skipping the frames before it.
func (c *Conn) Call(msg map[string]any) Frame {
	c.t.Helper()
	c.id++
	msg["id"] = c.id
	c.Send(msg)
	for range 1000 {
		f := c.Read()
		if (f.Type == "ack" || f.Type == "error") && f.ID != nil && *f.ID == c.id {
			return f
		}
	}
	c.t.Fatalf("adversarial: no answer to message %d among 1000 frames", c.id)
	return Frame{}
}

// ExpectError checks that f is an error frame with code.
func ExpectError(t testing.TB, f Frame, code string) {
	t.Helper()
	if f.Type != "error" || f.Code != code {
		t.Fatalf("got %+v, want an error %s", f, code)
	}
}

// ExpectClose reads until the connection ends and checks its close code.
func (c *Conn) ExpectClose(code websocket.StatusCode) {
	c.t.Helper()
	for range 1000 {
		if _, err := c.ReadWithin(Wait); err != nil {
			if got := websocket.CloseStatus(err); got != code {
				c.t.Fatalf("connection ended with %v (%v), want close %d", got, err, code)
			}
			return
		}
	}
	c.t.Fatalf("adversarial: still open after 1000 frames, want close %d", code)
}

// Raw opens a plain TCP connection to the server, closed when the test
// ends, for attacks below HTTP.
func (s *Server) Raw(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, Wait)
	if err != nil {
		t.Fatalf("adversarial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
