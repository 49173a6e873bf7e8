package engine

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/socketio/internal/eio"
)

func TestHeartbeat(t *testing.T) {
	fast := Options{PingInterval: 50 * time.Millisecond, PingTimeout: time.Second}
	t.Run("polling_ping_pong_keeps_the_session", func(t *testing.T) {
		h := newHarness(t, fast, true)
		sid, rec := h.handshake()
		for range 3 {
			if status, body := h.get(sid); status != 200 || body != "2" {
				t.Fatalf("GET: %d %q, want a ping", status, body)
			}
			if status, _ := h.post(sid, "3"); status != 200 {
				t.Fatalf("pong: %d", status)
			}
		}
		select {
		case info := <-rec.closed:
			t.Fatalf("closed: %+v", info)
		default:
		}
	})
	t.Run("polling_ping_timeout_closes", func(t *testing.T) {
		h := newHarness(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond}, true)
		sid, rec := h.handshake()
		if info := rec.waitClosed(t); info.Reason != ReasonPingTimeout || info.Unsent != 1 {
			t.Fatalf("closed %+v, want a ping timeout with the ping unsent", info)
		}
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
	})
	t.Run("a_request_after_the_deadline_finds_the_session_closed_before_its_timer_runs", func(t *testing.T) {
		h := newHarness(t, Options{PingInterval: time.Hour}, true)
		sid, rec := h.handshake()
		s := rec.s
		// The ping went out and its deadline passed, but the timer has not
		// run yet (a loaded machine runs timers late).
		s.mu.Lock()
		s.awaitingPong = true
		s.pongDue = time.Now().Add(-time.Millisecond)
		s.mu.Unlock()
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeUnknownSID)
		if info := rec.waitClosed(t); info.Reason != ReasonPingTimeout {
			t.Fatalf("reason %q", info.Reason)
		}
	})
	t.Run("websocket_ping_pong_keeps_the_session", func(t *testing.T) {
		h := newHarness(t, fast, true)
		c, _, rec := h.dialSession("")
		for range 3 {
			if _, got := readWS(t, c); got != "2" {
				t.Fatalf("got %q, want a ping", got)
			}
			writeWS(t, c, websocket.MessageText, "3")
		}
		select {
		case info := <-rec.closed:
			t.Fatalf("closed: %+v", info)
		default:
		}
	})
	t.Run("websocket_ping_timeout_closes", func(t *testing.T) {
		h := newHarness(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond}, true)
		c, _, rec := h.dialSession("")
		if info := rec.waitClosed(t); info.Reason != ReasonPingTimeout {
			t.Fatalf("reason %q", info.Reason)
		}
		closeStatus(t, c)
	})
}

func TestControlFlood(t *testing.T) {
	t.Run("websocket_pings", func(t *testing.T) {
		h := newHarness(t, Options{PingInterval: time.Minute}, true)
		c, _, rec := h.dialSession("")
		c.CloseRead(t.Context()) // reads the pongs for Ping
		for range 200 {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			err := c.Ping(ctx)
			cancel()
			if err != nil {
				break // pings past the limit close the socket
			}
		}
		if info := rec.waitClosed(t); info.Reason != ReasonFlood {
			t.Fatalf("reason %q", info.Reason)
		}
	})
	t.Run("polling_unsolicited_pongs", func(t *testing.T) {
		h := newHarness(t, Options{PingInterval: time.Minute}, true)
		sid, rec := h.handshake()
		status, _ := h.post(sid, strings.Repeat("3\x1e", 100)+"3")
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonFlood {
			t.Fatalf("reason %q", info.Reason)
		}
	})
	t.Run("v3_ping_from_the_client_closes", func(t *testing.T) {
		h := newHarness(t, Options{PingInterval: time.Minute}, true)
		sid, rec := h.handshake()
		h.post(sid, "2")
		if info := rec.waitClosed(t); info.Reason != ReasonParseError {
			t.Fatalf("reason %q", info.Reason)
		}
	})
}
