package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/hub"
)

func TestFrameLimits(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.MaxMessageBytes = 1024 })
	t.Run("oversized_message_closes_1009", func(t *testing.T) {
		c := e.connect(claims{sub: "a"})
		c.t = t
		c.sendRaw(`{"type":"event","event":"x","data":"` + strings.Repeat("a", 2048) + `"}`)
		if got := c.closeStatus(); got != websocket.StatusMessageTooBig {
			t.Fatalf("close = %d, want 1009", got)
		}
	})
	t.Run("invalid_utf8_closes_1007", func(t *testing.T) {
		c := e.connect(claims{sub: "a"})
		c.t = t
		c.sendRaw("{\"type\":\"event\",\"event\":\"x\",\"data\":\"\xff\xfe\"}")
		if got := c.closeStatus(); got != websocket.StatusInvalidFramePayloadData {
			t.Fatalf("close = %d, want 1007", got)
		}
	})
	t.Run("binary_frame_closes_1003", func(t *testing.T) {
		c := e.connect(claims{sub: "a"})
		c.t = t
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.ws.Write(ctx, websocket.MessageBinary, []byte("{}"))
		if got := c.closeStatus(); got != websocket.StatusUnsupportedData {
			t.Fatalf("close = %d, want 1003", got)
		}
	})
}

func TestCompression(t *testing.T) {
	t.Run("off_by_default", func(t *testing.T) {
		e := newEnv(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := e.header(token(t, claims{sub: "a"}))
		ws, resp, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{
			HTTPHeader: h, Subprotocols: []string{"wsgate.v1"}, CompressionMode: websocket.CompressionNoContextTakeover,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Fatalf("negotiated %q with compression off", ext)
		}
	})
	t.Run("opt_in_negotiates_no_context_takeover_and_limits_decompressed_size", func(t *testing.T) {
		e := newEnv(t, func(o *hub.Options) { o.Compression = true; o.MaxMessageBytes = 4096 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{
			HTTPHeader: e.header(token(t, claims{sub: "a"})), Subprotocols: []string{"wsgate.v1"},
			CompressionMode: websocket.CompressionNoContextTakeover, CompressionThreshold: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if !strings.Contains(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") {
			t.Fatalf("extensions = %q", ext)
		}
		c := &client{t: t, ws: ws}
		c.next() // welcome
		// 64 KiB of one letter deflates to a few hundred bytes on the wire.
		c.sendRaw(`{"type":"event","event":"x","data":"` + strings.Repeat("a", 64<<10) + `"}`)
		if got := c.closeStatus(); got != websocket.StatusMessageTooBig {
			t.Fatalf("close = %d, want 1009", got)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, nil)
	t.Run("connection_closes_at_expiry_with_bye", func(t *testing.T) {
		c := e.connect(claims{sub: "a", ttl: 1500 * time.Millisecond})
		c.t = t
		if f := c.next(); f.Code != "TOKEN_EXPIRED" {
			t.Fatalf("got %+v, want TOKEN_EXPIRED error", f)
		}
		f := c.next()
		if f.Type != "bye" || !strings.Contains(string(f.Data), "token_expired") {
			t.Fatalf("got %+v, want bye token_expired", f)
		}
		if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseTokenExpired) {
			t.Fatalf("close = %d, want 4003", got)
		}
	})
	t.Run("refresh_with_same_user_keeps_connection", func(t *testing.T) {
		c := e.connect(claims{sub: "a", ttl: 1500 * time.Millisecond})
		c.t = t
		c.send(map[string]any{"type": "auth", "id": 1, "data": map[string]string{"token": token(t, claims{sub: "a", ttl: time.Hour})}})
		if f := c.next(); f.Type != "ack" {
			t.Fatalf("refresh: %+v", f)
		}
		if f, err := c.read(2500 * time.Millisecond); err == nil {
			t.Fatalf("refreshed connection got %+v", f)
		} else if websocket.CloseStatus(err) != -1 {
			t.Fatalf("refreshed connection closed: %v", err)
		}
	})
	t.Run("refresh_with_other_user_is_refused", func(t *testing.T) {
		c := e.connect(claims{sub: "a"})
		c.t = t
		c.send(map[string]any{"type": "auth", "id": 1, "data": map[string]string{"token": token(t, claims{sub: "mallory"})}})
		if f := c.next(); f.Code != "UNAUTHORIZED" {
			t.Fatalf("got %+v", f)
		}
	})
}

func TestHeartbeatClosesDeadPeer(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.PingInterval = 100 * time.Millisecond
		o.PongTimeout = 100 * time.Millisecond
		o.HandlerTimeout = 50 * time.Millisecond
	})
	c := e.connect(claims{sub: "a"})
	_ = c // never reads again, so it never answers pings
	eventually(t, "the dead peer to be dropped", func() bool { return e.hub.Connections() == 0 })
	eventually(t, "the reason in the log", func() bool { return strings.Contains(e.log.String(), `"reason":"heartbeat_timeout"`) })
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.IdleTimeout = 200 * time.Millisecond })
	c := e.connect(claims{sub: "a"})
	f := c.next()
	if f.Type != "bye" || !strings.Contains(string(f.Data), "idle") {
		t.Fatalf("got %+v", f)
	}
	if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseIdle) {
		t.Fatalf("close = %d, want 4002", got)
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	clients := []*client{e.connect(claims{sub: "a"}), e.connect(claims{sub: "b"})}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.hub.Shutdown(ctx)
	}()
	for _, c := range clients {
		f := c.next()
		var d struct{ Reason string }
		_ = json.Unmarshal(f.Data, &d)
		if f.Type != "bye" || d.Reason != "shutdown" {
			t.Fatalf("got %+v, want bye shutdown", f)
		}
		if got := c.closeStatus(); got != websocket.StatusServiceRestart {
			t.Fatalf("close = %d, want 1012", got)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := e.dialRaw(ctx, e.header(token(t, claims{sub: "c"})))
	if err == nil {
		t.Fatal("connected after shutdown")
	}
	assertRefusal(t, resp, http.StatusServiceUnavailable, "UNAVAILABLE")
	if err := e.hub.Ready(ctx); err == nil {
		t.Fatal("Ready after shutdown")
	}
}

func TestShutdownDeadlineDropsStuckClients(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect(claims{sub: "a"})
	_ = c // never reads: never completes the close handshake
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.hub.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded (the client never answered the close)", err)
	}
	// The dropped connections finish in the background.
	eventually(t, "the stuck connection to be dropped", func() bool { return e.hub.Connections() == 0 })
	if err := e.hub.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown = %v, want nil like http.Server's", err)
	}
}
