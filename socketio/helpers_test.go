package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/room"
)

// wait bounds every read and every wait of these tests.
const wait = 5 * time.Second

// maxSkipped bounds the pings a read skips before the frame it waits for.
const maxSkipped = 50

// testAuth knows the tokens of the tests: "alice", "bob" and "carol" are
// those users (tenant t1), "short:<ms>:<user>" expires after ms
// milliseconds, "expired" has expired, anything else is forged.
type testAuth struct{}

func (testAuth) Authenticate(_ context.Context, tok string) (auth.Identity, error) {
	switch tok {
	case "alice", "bob", "carol":
		return auth.Identity{UserID: tok, TenantID: "t1", ExpiresAt: time.Now().Add(time.Hour)}, nil
	case "expired":
		return auth.Identity{}, auth.ErrTokenExpired
	}
	if rest, ok := strings.CutPrefix(tok, "short:"); ok {
		ms, user, _ := strings.Cut(rest, ":")
		n, err := strconv.Atoi(ms)
		if err == nil && user != "" {
			return auth.Identity{UserID: user, TenantID: "t1", ExpiresAt: time.Now().Add(time.Duration(n) * time.Millisecond)}, nil
		}
	}
	return auth.Identity{}, auth.ErrInvalidToken
}

// Inputs and outputs of the test handlers.
type (
	echoIn struct {
		Text string `json:"text" validate:"required,max=20"`
	}
	sayIn struct {
		Room string `json:"room" validate:"required"`
		Text string `json:"text" validate:"required" sanitize:"html"`
	}
	uploadIn struct {
		Name string `json:"name" validate:"required"`
		Data []byte `json:"data"`
	}
	uploadOut struct {
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	thumbnail struct {
		Name  string `json:"name"`
		Image []byte `json:"image"`
	}
)

// newTestHub is a hub with the handlers of these tests: "echo" answers its
// input; "say" broadcasts to a room; "upload" answers the size of its
// bytes; "thumb" answers with an attachment; "fail" fails with FORBIDDEN;
// "slow" takes longer than the handler deadline; "args" answers its raw
// input. Rooms of the kind "topic" may be joined, but topic:secret.
func newTestHub(t *testing.T, logs io.Writer, mutate func(*hub.Options)) *hub.Hub {
	t.Helper()
	policy, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{
		"topic": func(_ context.Context, _ auth.Identity, r room.Name) (bool, error) { return r.Arg != "secret", nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	opts := hub.Options{Authenticator: testAuth{}, Rooms: policy, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	if mutate != nil {
		mutate(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub.Handle(h, "echo", func(ctx hub.Context, in echoIn) (echoIn, error) { return in, nil })
	hub.Handle(h, "say", func(ctx hub.Context, in sayIn) (struct{}, error) {
		return struct{}{}, ctx.Broadcast(in.Room, "said", map[string]string{"from": ctx.Identity().UserID, "text": in.Text})
	})
	hub.Handle(h, "upload", func(ctx hub.Context, in uploadIn) (uploadOut, error) {
		return uploadOut{Name: in.Name, Size: len(in.Data)}, nil
	})
	hub.Handle(h, "thumb", func(ctx hub.Context, in uploadIn) (Binary, error) {
		return NewBinary(thumbnail{Name: in.Name, Image: append([]byte("thumb-of-"), in.Data...)})
	})
	hub.Handle(h, "fail", func(ctx hub.Context, _ struct{}) (struct{}, error) {
		return struct{}{}, hub.Errorf(hub.CodeForbidden, "not yours")
	})
	hub.Handle(h, "slow", func(ctx hub.Context, _ struct{}) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, nil
	})
	hub.Handle(h, "args", func(ctx hub.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	return h
}

// env is a Server on a loopback listener with two namespaces: "/" and
// "/notifications", each its own hub.
type env struct {
	t      *testing.T
	srv    *Server
	main   *hub.Hub
	notif  *hub.Hub
	url    string // http://127.0.0.1:port
	origin string // an origin the default check allows
	logs   *testutil.SyncBuffer
}

// newEnv starts the server; mutate changes its options, hubOpts the hubs'.
func newEnv(t *testing.T, mutate func(*Options), hubOpts func(*hub.Options)) *env {
	t.Helper()
	e := &env{t: t, logs: &testutil.SyncBuffer{}}
	e.main = newTestHub(t, e.logs, hubOpts)
	e.notif = newTestHub(t, e.logs, hubOpts)
	opts := Options{
		Namespaces: map[string]*hub.Hub{"/": e.main, "/notifications": e.notif},
		Logger:     slog.New(slog.NewJSONHandler(e.logs, nil)),
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	hs := httptest.NewServer(srv)
	e.url, e.origin = hs.URL, hs.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return e
}

func (e *env) header() http.Header { return http.Header{"Origin": {e.origin}} }

// wsClient is a raw Engine.IO/Socket.IO client over a WebSocket.
type wsClient struct {
	t    *testing.T
	c    *websocket.Conn
	ctx  context.Context
	open string // the open packet
	sid  string // the Socket.IO id of the last CONNECT answered (connectRecovering)
}

// dial opens a WebSocket session and reads its open packet.
func (e *env) dial(hdr http.Header) *wsClient {
	e.t.Helper()
	c, err := e.tryDial(hdr)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) tryDial(hdr http.Header) (*wsClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	e.t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(4 << 20)
	e.t.Cleanup(func() { conn.CloseNow() })
	c := &wsClient{t: e.t, c: conn, ctx: ctx}
	c.open = c.next()
	if !strings.HasPrefix(c.open, "0{") {
		return nil, errors.New("no open packet: " + c.open)
	}
	return c, nil
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	if err := c.c.Write(c.ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

func (c *wsClient) sendBinary(b []byte) {
	c.t.Helper()
	if err := c.c.Write(c.ctx, websocket.MessageBinary, b); err != nil {
		c.t.Fatalf("send binary: %v", err)
	}
}

// read returns the next frame that is not a ping (pings are answered), a
// binary frame prefixed with "bin:".
func (c *wsClient) read() (string, error) {
	for range maxSkipped {
		typ, p, err := c.c.Read(c.ctx)
		if err != nil {
			return "", err
		}
		if typ == websocket.MessageBinary {
			return "bin:" + string(p), nil
		}
		if string(p) == "2" {
			_ = c.c.Write(c.ctx, websocket.MessageText, []byte("3"))
			continue
		}
		return string(p), nil
	}
	return "", errors.New("only pings")
}

func (c *wsClient) next() string {
	c.t.Helper()
	s, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return s
}

// expect reads the next frame and checks it: exactly want, or, with a
// trailing "*", starting with the rest.
func (c *wsClient) expect(want string) string {
	c.t.Helper()
	got := c.next()
	if prefix, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(got, prefix) || got == want {
		return got
	}
	c.t.Fatalf("got %q, want %q", got, want)
	return ""
}

// closed reads until the socket closes and returns its close status (-1
// when it ended without a close frame).
func (c *wsClient) closed() websocket.StatusCode {
	c.t.Helper()
	for range maxSkipped {
		if _, err := c.read(); err != nil {
			if c.ctx.Err() != nil {
				c.t.Fatal("the socket did not close")
			}
			return websocket.CloseStatus(err)
		}
	}
	c.t.Fatal("the socket did not close")
	return 0
}

// connect joins nsp ("/" or "/x") with the auth payload (JSON, or "") and
// returns the Socket.IO id of the answer.
func (c *wsClient) connect(nsp, payload string) string {
	c.t.Helper()
	prefix := "40"
	if nsp != "/" {
		prefix += nsp + ","
	}
	c.send(prefix + payload)
	got := c.expect(prefix + `{"sid":"*`)
	var ack struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got, prefix)), &ack); err != nil || ack.SID == "" {
		c.t.Fatalf("CONNECT answer %q", got)
	}
	return ack.SID
}

// pollClient is a raw Engine.IO/Socket.IO client over long-polling.
type pollClient struct {
	t   *testing.T
	url string // with the sid
	sid string
	hdr http.Header
}

// poll opens a long-polling session.
func (e *env) poll(hdr http.Header) *pollClient {
	e.t.Helper()
	status, body := httpDo(e.t, http.MethodGet, e.url+"/socket.io/?EIO=4&transport=polling", hdr, "")
	if status != http.StatusOK || !strings.HasPrefix(body, "0{") {
		e.t.Fatalf("polling handshake: %d %s", status, body)
	}
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil {
		e.t.Fatal(err)
	}
	p := &pollClient{t: e.t, url: e.url + "/socket.io/?EIO=4&transport=polling&sid=" + open.SID, sid: open.SID, hdr: hdr}
	// A polling client that leaves says so; otherwise a graceful shutdown
	// waits for its next GET.
	e.t.Cleanup(func() { _, _ = httpDo(e.t, http.MethodPost, p.url, hdr, "1") })
	return p
}

func (p *pollClient) post(body string) int {
	p.t.Helper()
	status, _ := httpDo(p.t, http.MethodPost, p.url, p.hdr, body)
	return status
}

// get polls once and returns the packets, pings answered and left out; a
// poll that held only pings is repeated.
func (p *pollClient) get() (int, []string) {
	p.t.Helper()
	for range maxSkipped {
		status, body := httpDo(p.t, http.MethodGet, p.url, p.hdr, "")
		if status != http.StatusOK {
			return status, nil
		}
		var kept []string
		for _, pkt := range strings.Split(body, "\x1e") {
			if pkt == "2" {
				p.post("3")
				continue
			}
			kept = append(kept, pkt)
		}
		if len(kept) > 0 {
			return status, kept
		}
	}
	p.t.Fatal("only pings")
	return 0, nil
}

func httpDo(t *testing.T, method, url string, hdr http.Header, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// countingCodec counts the encodings of a namespace's codec; it compares
// equal across connections, as the codec does.
type countingCodec struct {
	codec
	n *atomic.Int64
}

func (c countingCodec) Encode(dst []wire.Frame, m *protocol.Message) []wire.Frame {
	if m.Kind == protocol.MsgEvent {
		c.n.Add(1)
	}
	return c.codec.Encode(dst, m)
}
