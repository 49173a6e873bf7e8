package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// recorder is a Receiver that records what its session gets, and echoes
// messages back when echo is set.
type recorder struct {
	s    *Session
	echo bool

	mu       sync.Mutex
	messages []string // text as "t:data", binary as "b:data"
	active   int      // Message calls in progress, to catch overlaps
	overlap  bool
	closed   chan CloseInfo
}

func (r *recorder) Message(p eio.Packet) {
	r.mu.Lock()
	r.active++
	if r.active > 1 {
		r.overlap = true
	}
	kind := "t:"
	if p.Binary {
		kind = "b:"
	}
	r.messages = append(r.messages, kind+string(p.Data))
	r.mu.Unlock()
	if r.echo {
		_ = r.s.Send(messageFrame(p))
	}
	r.mu.Lock()
	r.active--
	r.mu.Unlock()
}

func (r *recorder) Closed(info CloseInfo) { r.closed <- info }

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.messages...)
}

// messageFrame frames a received message packet to send it back.
func messageFrame(p eio.Packet) wire.Frame {
	if p.Binary {
		return wire.Frame{Op: wire.OpBinary, Payload: bytes.Clone(p.Data)}
	}
	return textFrame(string(p.Data))
}

func textFrame(data string) wire.Frame {
	return wire.Frame{Op: wire.OpText, Payload: []byte("4" + data)}
}

// harness is a Server on a real loopback listener, with the recorders of
// the sessions it opened, in order.
type harness struct {
	t   *testing.T
	srv *Server
	url string // http://127.0.0.1:PORT/engine.io/

	opened chan *recorder
}

// newHarness starts a Server with opts (Open is set by the harness);
// echo makes its sessions echo messages back.
func newHarness(t *testing.T, opts Options, echo bool) *harness {
	t.Helper()
	h := &harness{t: t, opened: make(chan *recorder, 1024)}
	opts.Open = func(s *Session, _ *http.Request) (Receiver, error) {
		rec := &recorder{s: s, echo: echo, closed: make(chan CloseInfo, 1)}
		h.opened <- rec
		return rec, nil
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.url = newHTTP(t, srv)
	return h
}

// newHTTP serves srv on /engine.io/ of a loopback listener and returns the
// URL; cleanup shuts it down.
func newHTTP(t *testing.T, srv *Server) string {
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		// Polling sessions with no GET would wait for one: the deadline
		// closes them.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.CloseClientConnections()
		hs.Close()
	})
	return hs.URL + "/engine.io/"
}

// next returns the recorder of the next session opened.
func (h *harness) next() *recorder {
	h.t.Helper()
	select {
	case r := <-h.opened:
		return r
	case <-time.After(5 * time.Second):
		h.t.Fatal("no session opened")
		return nil
	}
}

// waitClosed returns the session's CloseInfo once it closed.
func (r *recorder) waitClosed(t *testing.T) CloseInfo {
	t.Helper()
	select {
	case info := <-r.closed:
		r.closed <- info // later calls see it too
		return info
	case <-time.After(5 * time.Second):
		t.Fatal("session not closed")
		return CloseInfo{}
	}
}

// handshake opens a polling session and returns its sid and recorder.
func (h *harness) handshake() (string, *recorder) {
	h.t.Helper()
	status, body := h.do(http.MethodGet, "EIO=4&transport=polling", "")
	if status != http.StatusOK || !strings.HasPrefix(body, "0") {
		h.t.Fatalf("handshake: %d %q", status, body)
	}
	hs, err := eio.ParseOpen([]byte(body[1:]))
	if err != nil {
		h.t.Fatalf("handshake: %v", err)
	}
	return hs.SID, h.next()
}

// do sends one request with the given query and body, and returns the
// status and body of the answer.
func (h *harness) do(method, query, body string) (int, string) {
	h.t.Helper()
	return h.doCtx(context.Background(), method, query, body)
}

func (h *harness) doCtx(ctx context.Context, method, query, body string) (int, string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.url+"?"+query, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func pollQuery(sid string) string { return "EIO=4&transport=polling&sid=" + sid }

// get polls once.
func (h *harness) get(sid string) (int, string) {
	h.t.Helper()
	return h.do(http.MethodGet, pollQuery(sid), "")
}

// post sends a payload.
func (h *harness) post(sid, payload string) (int, string) {
	h.t.Helper()
	return h.do(http.MethodPost, pollQuery(sid), payload)
}

// dial opens a WebSocket with the given query.
func (h *harness) dial(query string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"?"+query, nil)
	if err == nil {
		c.SetReadLimit(4 << 20)
	}
	return c, err
}

// readWS reads one message within 5 s.
func readWS(t *testing.T, c *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(b)
}

func writeWS(t *testing.T, c *websocket.Conn, typ websocket.MessageType, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, []byte(data)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// errorBody parses an Engine.IO error body.
func errorBody(t *testing.T, body string) eio.ErrorCode {
	t.Helper()
	var v struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return eio.ErrorCode(v.Code)
}

// expectError checks an Engine.IO refusal.
func expectError(t *testing.T, status int, body string, code eio.ErrorCode) {
	t.Helper()
	if status != code.Status() {
		t.Fatalf("status %d (%q), want %d", status, body, code.Status())
	}
	if got := errorBody(t, body); got != code {
		t.Fatalf("code %d, want %d (%s)", got, code, code.Message())
	}
}

// sessionOf returns the live session with sid, or nil.
func (h *harness) sessionOf(sid string) *Session {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return h.srv.sessions[sid]
}

// waitHeld waits until the session has a GET held.
func waitHeld(t *testing.T, s *Session) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "GET held", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.get != nil
	})
}

// goroutinesSettle waits until the goroutine count is back to at most
// base plus slack (net/http's idle connections, timers).
func goroutinesSettle(t *testing.T, base, slack int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= base+slack
	})
}

// rawRequest writes a request by hand on a new connection, for what
// net/http's client will not send (a stalled body, an upgrade on a
// polling transport). The caller closes the connection.
func rawRequest(t *testing.T, h *harness, method, query, headers, body string) net.Conn {
	t.Helper()
	u, err := url.Parse(h.url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	req := method + " /engine.io/?" + query + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readResponse reads the answer to a rawRequest.
func readResponse(t *testing.T, conn net.Conn) (int, string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readStatus(t *testing.T, conn net.Conn) int {
	t.Helper()
	status, _ := readResponse(t, conn)
	return status
}
