package conformance

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startFixture serves a fixture on a loopback listener until the test ends.
func startFixture(t *testing.T) *httptest.Server {
	t.Helper()
	fx, err := New()
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(fx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = fx.Shutdown(ctx)
		hs.Close()
	})
	return hs
}

// The Socket.IO fixture on /socket.io/: the auth event, the echo of every
// argument, the ack, an unknown namespace refused.
func TestSocketIOFixture(t *testing.T) {
	hs := startFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	read := func() string {
		t.Helper()
		for range 10 { // pings may come between
			_, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "2" {
				return string(got)
			}
			_ = c.Write(ctx, websocket.MessageText, []byte("3"))
		}
		t.Fatal("only pings")
		return ""
	}
	read() // the open packet
	for _, step := range []struct{ send, want string }{
		{`40{"token":"t"}`, `40{"sid":`},
		{"", `42["auth",{"token":"t"}]`},
		{`42["message",1,"<b>",{"3":[true]}]`, `42["message-back",1,"<b>",{"3":[true]}]`},
		{`427["message-with-ack",false]`, `437[false]`},
		{`40/nope,`, `44/nope,{"message":"Invalid namespace"}`},
	} {
		if step.send != "" {
			if err := c.Write(ctx, websocket.MessageText, []byte(step.send)); err != nil {
				t.Fatal(err)
			}
		}
		if got := read(); !strings.HasPrefix(got, step.want) {
			t.Fatalf("after %q: got %q, want %q", step.send, got, step.want)
		}
	}
}

// The Engine.IO fixture on /engine.io/ echoes every message.
func TestFixture(t *testing.T) {
	hs := startFixture(t)
	t.Run("engine.io_echoes_text_and_binary", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/engine.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if _, open, err := c.Read(ctx); err != nil || !strings.Contains(string(open), `"upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000`) {
			t.Fatalf("open %q: %v", open, err)
		}
		for _, m := range []struct {
			typ  websocket.MessageType
			data string
		}{{websocket.MessageText, "4hello"}, {websocket.MessageBinary, "\x01\x02"}} {
			if err := c.Write(ctx, m.typ, []byte(m.data)); err != nil {
				t.Fatal(err)
			}
			typ, got, err := c.Read(ctx)
			for err == nil && string(got) == "2" { // a ping may come first
				_ = c.Write(ctx, websocket.MessageText, []byte("3"))
				typ, got, err = c.Read(ctx)
			}
			if err != nil || typ != m.typ || string(got) != m.data {
				t.Fatalf("echo of %q: %v %q %v", m.data, typ, got, err)
			}
		}
	})
	t.Run("polling_echo", func(t *testing.T) {
		resp, err := http.Get(hs.URL + "/engine.io/?EIO=4&transport=polling")
		if err != nil {
			t.Fatal(err)
		}
		open, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sid := strings.SplitN(strings.SplitN(string(open), `"sid":"`, 2)[1], `"`, 2)[0]
		url := hs.URL + "/engine.io/?EIO=4&transport=polling&sid=" + sid
		if resp, err := http.Post(url, "text/plain", strings.NewReader("4hi")); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		resp, err = http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(got), "4hi") { // a ping may be queued too
			t.Fatalf("GET %q", got)
		}
	})
}
