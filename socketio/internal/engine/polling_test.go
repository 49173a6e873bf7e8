package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

func TestPollingHandshake(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond}, true)
	resp, err := http.Get(h.url + "?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var open map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(body.String(), "0")), &open); err != nil {
		t.Fatalf("open packet %q: %v", body.String(), err)
	}
	sid, _ := open["sid"].(string)
	want := map[string]any{"sid": sid, "upgrades": []any{"websocket"}, "pingInterval": 300.0, "pingTimeout": 200.0, "maxPayload": 1e6}
	if !eio.ValidSID(sid) || len(open) != len(want) {
		t.Fatalf("open packet %v", open)
	}
	for k, v := range want {
		if b1, _ := json.Marshal(open[k]); string(b1) != mustJSON(v) {
			t.Fatalf("open packet %s = %s, want %s", k, b1, mustJSON(v))
		}
	}
	if h.next().s.Transport() != eio.Polling {
		t.Fatal("the session is not on polling")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPollingMessages(t *testing.T) {
	cases := []struct {
		name, post, want string
	}{
		{"one_text_packet", "4hello", "4hello"},
		{"several_packets_come_back_in_one_response", "4test1\x1e4test2\x1e4test3", "4test1\x1e4test2\x1e4test3"},
		{"text_and_binary_packets", "4hello\x1ebAQIDBA==", "4hello\x1ebAQIDBA=="},
	}
	h := newHarness(t, Options{}, true)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sid, _ := h.handshake()
			if status, body := h.post(sid, tc.post); status != 200 || body != "ok" {
				t.Fatalf("POST: %d %q", status, body)
			}
			if status, body := h.get(sid); status != 200 || body != tc.want {
				t.Fatalf("GET: %d %q, want %q", status, body, tc.want)
			}
		})
	}
}

func TestPollingRefusals(t *testing.T) {
	h := newHarness(t, Options{}, true)
	sid, _ := h.handshake()
	cases := []struct {
		name, method, query string
		code                eio.ErrorCode
	}{
		{"no_EIO", "GET", "transport=polling", eio.CodeUnsupportedProtocol},
		{"EIO_3", "GET", "EIO=3&transport=polling", eio.CodeUnsupportedProtocol},
		{"no_transport", "GET", "EIO=4", eio.CodeUnknownTransport},
		{"unknown_transport", "GET", "EIO=4&transport=abc", eio.CodeUnknownTransport},
		{"handshake_by_POST", "POST", "EIO=4&transport=polling", eio.CodeBadHandshakeMethod},
		{"handshake_by_PUT", "PUT", "EIO=4&transport=polling", eio.CodeBadHandshakeMethod},
		{"unknown_sid", "GET", pollQuery("AAAAAAAAAAAAAAAAAAAAAAAA"), eio.CodeUnknownSID},
		{"malformed_sid", "GET", pollQuery("../../etc"), eio.CodeUnknownSID},
		{"EIO_3_with_a_sid", "GET", "EIO=3&transport=polling&sid=" + sid, eio.CodeBadRequest},
		{"PUT_with_a_sid", "PUT", pollQuery(sid), eio.CodeBadRequest},
		{"websocket_without_upgrade_headers", "GET", "EIO=4&transport=websocket&sid=" + sid, eio.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.do(tc.method, tc.query, "4x")
			expectError(t, status, body, tc.code)
		})
	}
	// None of them touched the session.
	if h.sessionOf(sid) == nil {
		t.Fatal("a refused request closed the session")
	}
	if status, body := h.post(sid, "4still"); status != 200 || body != "ok" {
		t.Fatalf("POST after the refusals: %d %q", status, body)
	}
}

func TestPollingClose(t *testing.T) {
	t.Run("invalid_payload_closes_the_session", func(t *testing.T) {
		h := newHarness(t, Options{}, true)
		sid, rec := h.handshake()
		status, body := h.post(sid, "abc")
		expectError(t, status, body, eio.CodeBadRequest)
		if info := rec.waitClosed(t); info.Reason != ReasonParseError {
			t.Fatalf("reason %q", info.Reason)
		}
		status, body = h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
	})
	t.Run("client_close_releases_the_held_GET_with_a_noop", func(t *testing.T) {
		h := newHarness(t, Options{}, true)
		sid, rec := h.handshake()
		got := make(chan string, 1)
		go func() { _, body := h.get(sid); got <- body }()
		waitHeld(t, h.sessionOf(sid))
		if status, body := h.post(sid, "1"); status != 200 || body != "ok" {
			t.Fatalf("POST 1: %d %q", status, body)
		}
		if body := <-got; body != "6" {
			t.Fatalf("held GET answered %q, want the noop", body)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonClientClose {
			t.Fatalf("reason %q", info.Reason)
		}
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
	})
	t.Run("client_close_handled_before_its_GET_still_answers_the_GET_with_a_noop", func(t *testing.T) {
		h := newHarness(t, Options{}, true)
		sid, rec := h.handshake()
		s := h.sessionOf(sid)
		posted := make(chan string, 1)
		go func() { _, body := h.post(sid, "1"); posted <- body }()
		testutil.Eventually(t, 5*time.Second, "close waiting for its GET", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.closeWait != nil
		})
		if status, body := h.get(sid); status != 200 || body != "6" {
			t.Fatalf("GET after the close packet: %d %q, want the noop", status, body)
		}
		if body := <-posted; body != "ok" {
			t.Fatalf("POST answered %q", body)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonClientClose {
			t.Fatalf("reason %q", info.Reason)
		}
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
	})
	t.Run("server_close_delivers_the_queue_then_the_close_packet", func(t *testing.T) {
		h := newHarness(t, Options{}, false)
		sid, rec := h.handshake()
		for _, m := range []string{"a", "b"} {
			if err := rec.s.Send(textFrame(m)); err != nil {
				t.Fatal(err)
			}
		}
		rec.s.Close(wire.StatusNormalClosure)
		if err := rec.s.Send(textFrame("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
		if status, body := h.get(sid); status != 200 || body != "4a\x1e4b\x1e1" {
			t.Fatalf("GET: %d %q", status, body)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonServerClose || info.Unsent != 0 {
			t.Fatalf("closed %+v", info)
		}
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
	})
}

func TestPollingConcurrentRequests(t *testing.T) {
	t.Run("a_second_GET_closes_the_session", func(t *testing.T) {
		h := newHarness(t, Options{}, true)
		sid, rec := h.handshake()
		first := make(chan string, 1)
		go func() {
			status, body := h.get(sid)
			first <- http.StatusText(status) + " " + body
		}()
		waitHeld(t, h.sessionOf(sid))
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeBadRequest)
		if got := <-first; got != "OK 1" {
			t.Fatalf("held GET: %q, want the close packet", got)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonTransportError {
			t.Fatalf("reason %q", info.Reason)
		}
		status, body = h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
	})
	t.Run("a_second_POST_closes_the_session", func(t *testing.T) {
		h := newHarness(t, Options{}, true)
		sid, rec := h.handshake()
		// A POST whose body is still coming holds its place.
		stalled := rawRequest(t, h, "POST", pollQuery(sid), "Content-Length: 10\r\n", "4abc")
		defer stalled.Close()
		s := h.sessionOf(sid)
		testutil.Eventually(t, 5*time.Second, "POST in flight", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.posting
		})
		status, body := h.post(sid, "4second")
		expectError(t, status, body, eio.CodeBadRequest)
		if info := rec.waitClosed(t); info.Reason != ReasonTransportError {
			t.Fatalf("reason %q", info.Reason)
		}
		if got := rec.got(); len(got) != 0 {
			t.Fatalf("messages delivered: %q", got)
		}
	})
}

func TestPollingCancelledGET(t *testing.T) {
	t.Run("closes_the_session", func(t *testing.T) {
		h := newHarness(t, Options{}, true)
		sid, rec := h.handshake()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		h.doCtx(ctx, http.MethodGet, pollQuery(sid), "")
		if info := rec.waitClosed(t); info.Reason != ReasonTransportClose {
			t.Fatalf("reason %q", info.Reason)
		}
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
	})
	t.Run("puts_back_the_packets_it_had_taken", func(t *testing.T) {
		h := newHarness(t, Options{}, false)
		sid, rec := h.handshake()
		// The GET takes the frames, then its client goes away before they
		// are written: they must not count as delivered.
		testHookTaken = func(ctx context.Context) {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
		t.Cleanup(func() { testHookTaken = nil })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.doCtx(ctx, http.MethodGet, pollQuery(sid), "")
		}()
		waitHeld(t, h.sessionOf(sid))
		for _, m := range []string{"a", "b", "c"} {
			if err := rec.s.Send(textFrame(m)); err != nil {
				t.Fatal(err)
			}
		}
		time.AfterFunc(5*time.Millisecond, cancel)
		<-done
		info := rec.waitClosed(t)
		if info.Reason != ReasonTransportClose || info.Unsent != 3 {
			t.Fatalf("closed %+v, want transport close with the 3 frames unsent", info)
		}
	})
}

// A client that reads a whole response and closes its connection at once
// (no keep-alive) got what it held: the session goes on, and nothing is
// sent twice.
func TestPollingClientClosingAfterTheResponseKeepsItsSession(t *testing.T) {
	// Reset after the harness's cleanup, once no handler runs.
	t.Cleanup(func() { testHookWritten = nil })
	// Once the response is written, wait until the request's context ends:
	// the client's close, which net/http sees as a cancellation.
	var closing atomic.Bool
	closing.Store(true)
	testHookWritten = func(ctx context.Context) {
		if !closing.Load() {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	h := newHarness(t, Options{}, false)
	sid, rec := h.handshake()
	for i, m := range []string{"a", "b", "c"} {
		if err := rec.s.Send(textFrame(m)); err != nil {
			t.Fatal(err)
		}
		conn := rawRequest(t, h, "GET", pollQuery(sid), "Connection: close\r\n", "")
		status, body := readResponse(t, conn)
		conn.Close()
		if status != http.StatusOK || body != "4"+m {
			t.Fatalf("GET %d: %d %q", i, status, body)
		}
	}
	closing.Store(false)
	if err := rec.s.Send(textFrame("d")); err != nil {
		t.Fatalf("the session ended: %v", err)
	}
	if status, body := h.get(sid); status != http.StatusOK || body != "4d" {
		t.Fatalf("next GET: %d %q", status, body)
	}
}

func TestPollingPayloadLimits(t *testing.T) {
	h := newHarness(t, Options{MaxPayload: 1000}, true)
	t.Run("POST_over_MaxPayload_is_413_and_closes", func(t *testing.T) {
		sid, rec := h.handshake()
		status, _ := h.post(sid, "4"+strings.Repeat("x", 1000))
		if status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", status)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonParseError {
			t.Fatalf("reason %q", info.Reason)
		}
		if len(rec.got()) != 0 {
			t.Fatal("a message of the refused body was delivered")
		}
	})
	t.Run("chunked_POST_over_MaxPayload_is_413", func(t *testing.T) {
		sid, rec := h.handshake()
		conn := rawRequest(t, h, "POST", pollQuery(sid), "Transfer-Encoding: chunked\r\n",
			"3e9\r\n4"+strings.Repeat("x", 1000)+"\r\n0\r\n\r\n")
		defer conn.Close()
		if status := readStatus(t, conn); status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", status)
		}
		rec.waitClosed(t)
	})
	t.Run("binary_content_type_is_refused", func(t *testing.T) {
		sid, rec := h.handshake()
		conn := rawRequest(t, h, "POST", pollQuery(sid), "Content-Type: application/octet-stream\r\nContent-Length: 2\r\n", "4x")
		defer conn.Close()
		if status := readStatus(t, conn); status != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", status)
		}
		rec.waitClosed(t)
	})
	t.Run("a_response_holds_at_most_MaxPayload", func(t *testing.T) {
		sid, rec := h.handshake()
		big := strings.Repeat("y", 400)
		for range 3 {
			if err := rec.s.Send(textFrame(big)); err != nil {
				t.Fatal(err)
			}
		}
		if _, body := h.get(sid); body != "4"+big+"\x1e4"+big {
			t.Fatalf("first GET has %d bytes, want two packets", len(body))
		}
		if _, body := h.get(sid); body != "4"+big {
			t.Fatalf("second GET has %d bytes, want the third packet", len(body))
		}
	})
}

func TestSendUnits(t *testing.T) {
	h := newHarness(t, Options{MaxQueued: 4, MaxQueuedBytes: 100}, false)
	sid, rec := h.handshake()
	s := rec.s
	bin := wire.Frame{Op: wire.OpBinary, Payload: []byte{1, 2, 3}}
	invalid := [][]wire.Frame{
		nil,
		{{Op: wire.OpText, Payload: []byte("2")}},
		{{Op: wire.OpText, Payload: nil}},
		{{Op: wire.OpText, Payload: []byte("4a\x1eb")}},
		{{Op: wire.OpPing, Payload: []byte("4")}},
		{{Op: wire.OpText, Deflated: true, Payload: []byte("4a")}},
	}
	for _, unit := range invalid {
		if err := s.Send(unit...); !errors.Is(err, ErrInvalidUnit) {
			t.Fatalf("Send(%v) = %v, want ErrInvalidUnit", unit, err)
		}
	}
	if err := s.Send(textFrame("1"), bin); err != nil {
		t.Fatal(err)
	}
	// Three more frames would make five: the unit is refused whole.
	if err := s.Send(textFrame("2"), bin, bin); !errors.Is(err, ErrFull) {
		t.Fatalf("over MaxQueued: %v", err)
	}
	if err := s.Send(textFrame(strings.Repeat("z", 100))); !errors.Is(err, ErrFull) {
		t.Fatalf("over MaxQueuedBytes: %v", err)
	}
	if err := s.Send(textFrame("3")); err != nil {
		t.Fatal(err)
	}
	if _, body := h.get(sid); body != "41\x1ebAQID\x1e43" {
		t.Fatalf("GET %q", body)
	}
	// The queue is free again.
	if err := s.Send(textFrame("4"), bin, bin); err != nil {
		t.Fatal(err)
	}
}

func TestSessionTableBound(t *testing.T) {
	h := newHarness(t, Options{MaxSessions: 2}, true)
	h.handshake()
	h.handshake()
	status, body := h.do(http.MethodGet, "EIO=4&transport=polling", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "UNAVAILABLE") {
		t.Fatalf("third handshake: %d %q", status, body)
	}
	if h.srv.Len() != 2 {
		t.Fatalf("%d sessions", h.srv.Len())
	}
}
