package engine

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// dialSession opens a WebSocket session and reads its open packet.
func (h *harness) dialSession(query string) (*websocket.Conn, eio.Handshake, *recorder) {
	h.t.Helper()
	c, err := h.dial("EIO=4&transport=websocket" + query)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.CloseNow() })
	typ, open := readWS(h.t, c)
	if typ != websocket.MessageText || !strings.HasPrefix(open, "0") {
		h.t.Fatalf("first frame %v %q", typ, open)
	}
	hs, err := eio.ParseOpen([]byte(open[1:]))
	if err != nil {
		h.t.Fatal(err)
	}
	return c, hs, h.next()
}

// closeStatus waits for the socket to close and returns the code.
func closeStatus(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("socket not closed")
			}
			return websocket.CloseStatus(err)
		}
	}
}

func TestWebSocket(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute}, true)
	t.Run("open_packet_first_with_no_upgrades", func(t *testing.T) {
		_, hs, rec := h.dialSession("")
		if len(hs.Upgrades) != 0 || hs.MaxPayload != eio.DefaultMaxPayload || !eio.ValidSID(hs.SID) {
			t.Fatalf("handshake %v", hs)
		}
		if rec.s.Transport() != eio.WebSocket {
			t.Fatal("not a WebSocket session")
		}
	})
	t.Run("text_and_binary_echo", func(t *testing.T) {
		c, _, rec := h.dialSession("")
		writeWS(t, c, websocket.MessageText, "4hello")
		if typ, got := readWS(t, c); typ != websocket.MessageText || got != "4hello" {
			t.Fatalf("echo %v %q", typ, got)
		}
		writeWS(t, c, websocket.MessageBinary, "\x01\x02\x03\x04")
		if typ, got := readWS(t, c); typ != websocket.MessageBinary || got != "\x01\x02\x03\x04" {
			t.Fatalf("echo %v %q", typ, got)
		}
		if got := rec.got(); strings.Join(got, ",") != "t:hello,b:\x01\x02\x03\x04" {
			t.Fatalf("received %q", got)
		}
	})
	t.Run("base64_client_gets_binary_as_text", func(t *testing.T) {
		c, _, _ := h.dialSession("&b64=1")
		writeWS(t, c, websocket.MessageText, "bAQIDBA==")
		if typ, got := readWS(t, c); typ != websocket.MessageText || got != "bAQIDBA==" {
			t.Fatalf("echo %v %q", typ, got)
		}
	})
}

func TestWebSocketClose(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute}, true)
	t.Run("invalid_packet_closes", func(t *testing.T) {
		c, _, rec := h.dialSession("")
		writeWS(t, c, websocket.MessageText, "abc")
		if code := closeStatus(t, c); code != websocket.StatusPolicyViolation {
			t.Fatalf("close %d", code)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonParseError {
			t.Fatalf("reason %q", info.Reason)
		}
	})
	t.Run("client_close_packet_closes", func(t *testing.T) {
		c, _, rec := h.dialSession("")
		writeWS(t, c, websocket.MessageText, "1")
		if code := closeStatus(t, c); code != websocket.StatusNormalClosure {
			t.Fatalf("close %d", code)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonClientClose {
			t.Fatalf("reason %q", info.Reason)
		}
	})
	t.Run("client_close_frame_closes", func(t *testing.T) {
		c, _, rec := h.dialSession("")
		if err := c.Close(websocket.StatusGoingAway, ""); err != nil {
			t.Fatal(err)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonTransportClose {
			t.Fatalf("reason %q", info.Reason)
		}
	})
	t.Run("message_over_MaxPayload_closes_with_1009", func(t *testing.T) {
		small := newHarness(t, Options{MaxPayload: 100, PingInterval: time.Minute}, true)
		c, _, rec := small.dialSession("")
		writeWS(t, c, websocket.MessageText, "4"+strings.Repeat("x", 100))
		if code := closeStatus(t, c); code != websocket.StatusMessageTooBig {
			t.Fatalf("close %d", code)
		}
		if len(rec.got()) != 0 {
			t.Fatal("the oversized message was delivered")
		}
		rec.waitClosed(t)
	})
	t.Run("server_close_sends_the_queue_then_the_close_frame", func(t *testing.T) {
		c, _, rec := h.dialSession("")
		_ = rec.s.Send(textFrame("last"))
		rec.s.Close(wire.StatusCode(4000))
		if _, got := readWS(t, c); got != "4last" {
			t.Fatalf("got %q", got)
		}
		if code := closeStatus(t, c); code != 4000 {
			t.Fatalf("close %d", code)
		}
		if info := rec.waitClosed(t); info.Reason != ReasonServerClose {
			t.Fatalf("reason %q", info.Reason)
		}
		if err := rec.s.Send(textFrame("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
	})
}

func TestWebSocketRefusals(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute}, true)
	t.Run("invalid_handshakes_are_refused", func(t *testing.T) {
		for _, q := range []string{"transport=websocket", "EIO=abc&transport=websocket", "EIO=4", "EIO=4&transport=abc"} {
			if _, err := h.dial(q); err == nil {
				t.Fatalf("%s: accepted", q)
			}
		}
		status, body := h.do(http.MethodGet, "EIO=4&transport=websocket", "")
		expectError(t, status, body, eio.CodeBadRequest)
		// Upgrade headers without a key: refused before any session exists.
		n := h.srv.Len()
		conn := rawRequest(t, h, http.MethodGet, "EIO=4&transport=websocket", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", "")
		defer conn.Close()
		status, body = readResponse(t, conn)
		expectError(t, status, body, eio.CodeBadRequest)
		select {
		case <-h.opened:
			t.Fatal("Open was called for a handshake that cannot complete")
		default:
		}
		if h.srv.Len() != n {
			t.Fatalf("%d sessions, was %d", h.srv.Len(), n)
		}
	})
}
