package engine

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

func TestNewValidates(t *testing.T) {
	open := func(*Session, *http.Request) (Receiver, error) { return nil, nil }
	cases := []struct {
		name string
		opts Options
	}{
		{"no_Open", Options{}},
		{"negative_duration", Options{Open: open, PingTimeout: -1}},
		{"negative_size", Options{Open: open, MaxQueued: -1}},
		{"budget_below_one_payload", Options{Open: open, MaxPayload: 1000, BodyBudget: 999}},
		{"cookie_without_value", Options{Open: open, Cookie: Cookie{Name: "node"}}},
		{"cookie_value_without_name", Options{Open: open, Cookie: Cookie{Value: "n1"}}},
		{"cookie_with_a_bad_name", Options{Open: open, Cookie: Cookie{Name: "no de", Value: "n1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestCheckRunsOnEveryRequest pins that Check sees every request of a
// session, with or without a sid and whatever its transport (the
// reference server skips its allowRequest when a sid is present), and
// that what it refuses changes nothing.
func TestCheckRunsOnEveryRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	refuse := ""
	h := newHarness(t, Options{PingInterval: time.Minute, Check: func(r *http.Request, handshake bool) error {
		q := r.URL.Query()
		kind := r.Method + " " + q.Get("transport")
		if handshake {
			kind += " handshake"
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, kind)
		if refuse != "" && strings.HasPrefix(kind, refuse) {
			return &protocol.Refusal{Status: http.StatusForbidden, Code: protocol.CodeForbidden, Message: "origin not allowed"}
		}
		return nil
	}}, true)
	setRefuse := func(k string) {
		mu.Lock()
		defer mu.Unlock()
		refuse = k
	}
	sid, rec := h.handshake()
	h.post(sid, "4a")
	h.get(sid)
	c := h.probe(sid)
	writeWS(t, c, websocket.MessageText, "5")
	h.do(http.MethodGet, "EIO=4&transport=abc", "")
	mu.Lock()
	want := []string{"GET polling handshake", "POST polling", "GET polling", "GET websocket", "GET abc handshake"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("Check saw %q, want %q", seen, want)
	}
	mu.Unlock()

	t.Run("a_refused_POST_with_a_sid_delivers_nothing", func(t *testing.T) {
		sid, rec := h.handshake()
		setRefuse("POST")
		defer setRefuse("")
		status, body := h.post(sid, "4refused")
		if status != http.StatusForbidden || !strings.Contains(body, "FORBIDDEN") {
			t.Fatalf("POST: %d %q", status, body)
		}
		if len(rec.got()) != 0 || h.sessionOf(sid) == nil {
			t.Fatal("the refused POST reached the session")
		}
	})
	t.Run("a_refused_upgrade_leaves_the_session_on_polling", func(t *testing.T) {
		sid, rec := h.handshake()
		setRefuse("GET websocket")
		defer setRefuse("")
		if _, err := h.dial("EIO=4&transport=websocket&sid=" + sid); err == nil {
			t.Fatal("upgrade accepted")
		}
		if rec.s.Transport() != eio.Polling || h.sessionOf(sid) == nil {
			t.Fatal("the session changed")
		}
	})
	t.Run("a_refused_handshake_opens_no_session", func(t *testing.T) {
		setRefuse("GET polling handshake")
		defer setRefuse("")
		n := h.srv.Len()
		status, _ := h.do(http.MethodGet, "EIO=4&transport=polling", "")
		if status != http.StatusForbidden || h.srv.Len() != n {
			t.Fatalf("status %d, %d sessions (was %d)", status, h.srv.Len(), n)
		}
	})
	_ = rec
}

func TestOpenRefuses(t *testing.T) {
	srv, err := New(Options{Open: func(*Session, *http.Request) (Receiver, error) {
		return nil, &protocol.Refusal{Status: http.StatusTooManyRequests, Code: protocol.CodeConnectionLimit, Message: "too many", RetryAfter: 3 * time.Second}
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, url: newHTTP(t, srv)}
	status, body := h.do(http.MethodGet, "EIO=4&transport=polling", "")
	if status != http.StatusTooManyRequests || !strings.Contains(body, protocol.CodeConnectionLimit) || srv.Len() != 0 {
		t.Fatalf("%d %q, %d sessions", status, body, srv.Len())
	}
}

func TestSessionClosedByOpenIsNotKept(t *testing.T) {
	srv, err := New(Options{Open: func(s *Session, _ *http.Request) (Receiver, error) {
		s.Close(wire.StatusNormalClosure)
		return nopReceiver{}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, url: newHTTP(t, srv)}
	if _, err := h.dial("EIO=4&transport=websocket"); err == nil {
		t.Fatal("the handshake of a closed session was accepted")
	}
	if srv.Len() != 0 {
		t.Fatalf("%d sessions kept", srv.Len())
	}
}

func TestStickyCookie(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute, Cookie: Cookie{Name: "wsgate_node", Value: "node-1"}}, true)
	for _, transport := range []string{"polling", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			var header http.Header
			if transport == "polling" {
				resp, err := http.Get(h.url + "?EIO=4&transport=polling")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				header = resp.Header
			} else {
				c, resp, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(h.url, "http")+"?EIO=4&transport=websocket", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				header = resp.Header
			}
			got := header.Get("Set-Cookie")
			for _, part := range []string{"wsgate_node=node-1", "Path=/", "HttpOnly", "SameSite=Lax"} {
				if !strings.Contains(got, part) {
					t.Fatalf("Set-Cookie %q lacks %q", got, part)
				}
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute}, true)
	sid, pollRec := h.handshake()
	held := make(chan string, 1)
	go func() { _, body := h.get(sid); held <- body }()
	waitHeld(t, h.sessionOf(sid))
	c, _, wsRec := h.dialSession("")
	// The client reads, so that it answers the close frame: Shutdown
	// waits for the closing handshake.
	code := make(chan websocket.StatusCode, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				code <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if body := <-held; body != "1" {
		t.Fatalf("held GET answered %q, want the close packet", body)
	}
	if got := <-code; got != websocket.StatusServiceRestart {
		t.Fatalf("close %d, want 1012", got)
	}
	for _, rec := range []*recorder{pollRec, wsRec} {
		if info := rec.waitClosed(t); info.Reason != ReasonShutdown {
			t.Fatalf("reason %q", info.Reason)
		}
	}
	status, body := h.do(http.MethodGet, "EIO=4&transport=polling", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "UNAVAILABLE") {
		t.Fatalf("handshake after Shutdown: %d %q", status, body)
	}
}

// TestMessagesNeverOverlap sends over polling and, at the same time, over
// the WebSocket that upgraded the session: Message calls stay one at a
// time, and the ones after Closed never come.
func TestMessagesNeverOverlap(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute}, false)
	sid, rec := h.handshake()
	c := h.probe(sid)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 50 {
			if status, _ := h.post(sid, "4p\x1e4p\x1e4p"); status != 200 {
				return // the upgrade completed: polling is refused from then on
			}
		}
	})
	writeWS(t, c, websocket.MessageText, "5")
	for range 200 {
		writeWS(t, c, websocket.MessageText, "4w")
	}
	wg.Wait()
	writeWS(t, c, websocket.MessageText, "1")
	rec.waitClosed(t)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.overlap {
		t.Fatal("Message calls overlapped")
	}
}

func TestReceiverPanicIsRecovered(t *testing.T) {
	closedInfos := make(chan CloseInfo, 1)
	srv, err := New(Options{PingInterval: time.Minute, Open: func(s *Session, _ *http.Request) (Receiver, error) {
		return panicky{closed: closedInfos}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, url: newHTTP(t, srv)}
	_, body := h.do(http.MethodGet, "EIO=4&transport=polling", "")
	hs, err := eio.ParseOpen([]byte(strings.TrimPrefix(body, "0")))
	if err != nil {
		t.Fatal(err)
	}
	h.post(hs.SID, "4boom")
	select {
	case info := <-closedInfos:
		if info.Reason != ReasonInternal {
			t.Fatalf("reason %q", info.Reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not closed")
	}
}

type panicky struct{ closed chan CloseInfo }

func (panicky) Message(eio.Packet)      { panic("handler bug") }
func (p panicky) Closed(info CloseInfo) { p.closed <- info }
