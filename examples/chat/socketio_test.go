package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// sioClient is a raw Socket.IO client over a WebSocket: the packets
// socket.io-client sends, written out.
type sioClient struct {
	t      *testing.T
	ws     *websocket.Conn
	events []string // event packets read while waiting for an ack
}

// dialSocketIO opens a Socket.IO session from the page's origin (or the
// one in h) and reads its open packet.
func (e *testEnv) dialSocketIO(t *testing.T, h http.Header) (*sioClient, *http.Response, error) {
	t.Helper()
	hdr := http.Header{"Origin": {e.origin}}
	for k, v := range h {
		hdr[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPClient: e.httpClient, HTTPHeader: hdr})
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &sioClient{t: t, ws: ws}
	if open := c.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	return c, resp, nil
}

// connectSocketIO opens a session and joins "/" as user with the JWT in
// auth.token, as io(url, {auth: {token}}) does.
func (e *testEnv) connectSocketIO(t *testing.T, user string) *sioClient {
	t.Helper()
	c, resp, err := e.dialSocketIO(t, nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, describe(resp))
	}
	c.send(`40{"token":"` + e.token(t, user) + `"}`)
	if got := c.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("CONNECT as %s: %s", user, got)
	}
	return c
}

func (c *sioClient) send(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet that is not a ping (pings are answered).
func (c *sioClient) read() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	for range maxFrames {
		_, p, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if string(p) != "2" {
			return string(p)
		}
		_ = c.ws.Write(ctx, websocket.MessageText, []byte("3"))
	}
	c.t.Fatal("only pings")
	return ""
}

// emit sends event with data and ack id id, and returns the ack's
// arguments; events that come first are kept in c.events.
func (c *sioClient) emit(id, event, data string) string {
	c.t.Helper()
	c.send(`42` + id + `["` + event + `",` + data + `]`)
	prefix := "43" + id
	for range maxFrames {
		got := c.read()
		if ack, ok := strings.CutPrefix(got, prefix); ok {
			return ack
		}
		if !strings.HasPrefix(got, "42") {
			c.t.Fatalf("answer to %s: %s", event, got)
		}
		c.events = append(c.events, got)
	}
	c.t.Fatalf("no answer to %s", event)
	return ""
}

// Socket.IO clients use the same handlers and rooms as the page's native
// clients: a conversation holds both, a message reaches both, and the room
// policy applies alike.
func TestSocketIOClientsShareHandlersAndRooms(t *testing.T) {
	e := startServer(t, nil)
	alice := e.connectSocketIO(t, "alice")
	bob := e.connect(t, "bob") // the page's wsgate.v1 client
	bob.mustJoin(conversationRoom(demoConversation))
	// The conversation keeps history: the join's ack carries its position.
	if got := alice.emit("1", "join", `"`+conversationRoom(demoConversation)+`"`); !strings.HasPrefix(got, `[{"offset":0,"epoch":"`) {
		t.Fatalf("join: %s", got)
	}
	if got := alice.emit("2", "join", `"`+conversationRoom(privateConversation)+`"`); !strings.Contains(got, `"code":"FORBIDDEN"`) {
		t.Fatalf("join of another conversation: %s", got)
	}
	reply := alice.emit("3", "message:send", `{"conversationId":"`+demoConversation+`","content":"<b>hi</b> bob"}`)
	var ack []sendReply
	if err := json.Unmarshal([]byte(reply), &ack); err != nil || len(ack) != 1 || ack[0].ID == "" {
		t.Fatalf("message:send ack %s: %v", reply, err)
	}
	// The broadcast reached alice before her ack (her queue is FIFO); bob
	// gets it on the native protocol.
	if len(alice.events) != 1 || !strings.HasPrefix(alice.events[0], `42["message:new",{"id":"`+ack[0].ID+`"`) {
		t.Fatalf("alice's own message: %q", alice.events)
	}
	f := bob.next(func(f frame) bool { return f.Type == "event" && f.Event == "message:new" })
	var got messageNew
	decode(t, f.Data, &got)
	if got.ID != ack[0].ID || got.Content != "hi bob" || got.SenderID != "alice" {
		t.Fatalf("bob got %+v", got)
	}
	bob.event("typing:start", map[string]string{"conversationId": demoConversation})
	if pkt := alice.read(); !strings.HasPrefix(pkt, `42["typing",{"userId":"bob"`) {
		t.Fatalf("alice got %s", pkt)
	}
	if got := alice.emit("4", "message:send", `{"conversationId":"`+privateConversation+`","content":"x"}`); !strings.Contains(got, `"code":"FORBIDDEN"`) {
		t.Fatalf("a message to another conversation: %s", got)
	}
}

// The cookie the demo login sets is the credential of a polling page that
// sends no auth payload; a bad token is a CONNECT_ERROR with the wsgate
// code; a request of a live session from another origin is refused.
func TestSocketIOCredentialsAndOrigin(t *testing.T) {
	e := startServer(t, nil)
	get := func(url string, hdr http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		req.Header = hdr
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(url string, hdr http.Header, body string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
		req.Header = hdr.Clone()
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	page := http.Header{"Origin": {e.origin}, "Cookie": {tokenCookie + "=" + e.token(t, "carol")}}
	st, open := get(e.url+"/socket.io/?EIO=4&transport=polling", page)
	if st != http.StatusOK {
		t.Fatalf("handshake %d %s", st, open)
	}
	var hs struct {
		SID string `json:"sid"`
	}
	decode(t, json.RawMessage(open[1:]), &hs)
	url := e.url + "/socket.io/?EIO=4&transport=polling&sid=" + hs.SID
	if st := post(url, page, "40"); st != http.StatusOK {
		t.Fatalf("CONNECT %d", st)
	}
	if st, body := get(url, page); st != http.StatusOK || !strings.HasPrefix(body, `40{"sid":"`) {
		t.Fatalf("CONNECT answer %d %s", st, body)
	}
	evil := http.Header{"Origin": {"https://evil.example"}, "Cookie": page["Cookie"]}
	if st, _ := get(url, evil); st != http.StatusForbidden {
		t.Fatalf("a GET of the session from another origin: %d", st)
	}
	_ = post(url, page, "1")

	c, _, err := e.dialSocketIO(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(`40{"token":"not-a-jwt"}`)
	if got := c.read(); got != `44{"message":"invalid credentials","data":{"code":"UNAUTHORIZED"}}` {
		t.Fatalf("bad token: %s", got)
	}
}

// The page's Socket.IO variant is served when the socket.io-client bundle
// is configured, from this origin and under the page's headers; without
// it there is no such page, and a bundle path that is not a file is a
// startup error.
func TestSocketIOPage(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "socket.io.esm.min.js")
	if err := os.WriteFile(bundle, []byte("export const io = () => {};\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	get := func(t *testing.T, e *testEnv, path string) (int, http.Header, string) {
		t.Helper()
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	t.Run("served_with_the_bundle", func(t *testing.T) {
		e := startServer(t, func(c *config) { c.SocketIOClient = bundle })
		for _, tt := range []struct{ path, wantType, wantBody string }{
			{"/socketio", "text/html", `<html lang="en" data-transport="socketio">`},
			{"/static/sio-client.js", "text/javascript", "import { io } from './socket.io.esm.min.js';"},
			{"/static/socket.io.esm.min.js", "text/javascript", "export const io"},
			{"/", "text/html", `<a href="/socketio">`},
		} {
			status, h, body := get(t, e, tt.path)
			switch {
			case status != http.StatusOK:
				t.Errorf("GET %s: %d", tt.path, status)
			case !strings.HasPrefix(h.Get("Content-Type"), tt.wantType):
				t.Errorf("GET %s: Content-Type %q", tt.path, h.Get("Content-Type"))
			case h.Get("Content-Security-Policy") != e.s.csp || h.Get("X-Content-Type-Options") != "nosniff":
				t.Errorf("GET %s: headers %v", tt.path, h)
			case !strings.Contains(body, tt.wantBody):
				t.Errorf("GET %s: body lacks %q", tt.path, tt.wantBody)
			}
		}
	})
	t.Run("absent_without_it", func(t *testing.T) {
		e := startServer(t, nil)
		for _, path := range []string{"/socketio", "/static/sio-client.js", "/static/socket.io.esm.min.js"} {
			if status, _, _ := get(t, e, path); status != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", path, status)
			}
		}
		if _, _, body := get(t, e, "/"); strings.Contains(body, "/socketio") {
			t.Error("the page links to a Socket.IO page that is not served")
		}
	})
	t.Run("a_missing_bundle_is_a_startup_error", func(t *testing.T) {
		for _, path := range []string{filepath.Join(t.TempDir(), "missing.js"), t.TempDir()} {
			if _, err := newServer(config{Addr: "127.0.0.1:8080", SocketIOClient: path}); err == nil {
				t.Errorf("newServer accepted the bundle %q", path)
			}
		}
	})
}
