package wire

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func upgradeRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	return r
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name   string
		mod    func(r *http.Request)
		status int
	}{
		{"valid_handshake", func(*http.Request) {}, 0},
		{"plain_get_needs_an_upgrade", func(r *http.Request) { r.Header.Del("Upgrade"); r.Header.Del("Connection") }, http.StatusUpgradeRequired},
		{"upgrade_to_something_else", func(r *http.Request) { r.Header.Set("Upgrade", "h2c") }, http.StatusUpgradeRequired},
		{"post", func(r *http.Request) { r.Method = http.MethodPost }, http.StatusMethodNotAllowed},
		{"http_1_0", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 1, 0 }, http.StatusBadRequest},
		{"version_8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, http.StatusUpgradeRequired},
		{"missing_key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, http.StatusBadRequest},
		{"key_of_15_bytes", func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(make([]byte, 15)))
		}, http.StatusBadRequest},
		{"key_not_base64", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "<script>alert(1)</script>!!") }, http.StatusBadRequest},
		{"two_keys", func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, http.StatusBadRequest},
		{"header_tokens_are_case_insensitive", func(r *http.Request) { r.Header.Set("Connection", "UPGRADE"); r.Header.Set("Upgrade", "WebSocket") }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := upgradeRequest()
			tc.mod(r)
			err := Check(r)
			var he *HandshakeError
			switch {
			case tc.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.status != 0 && (!errors.As(err, &he) || he.Status != tc.status):
				t.Fatalf("err = %v, want status %d", err, tc.status)
			case he != nil && strings.ContainsAny(he.Message, "<>"):
				t.Fatalf("message reflects the request: %q", he.Message)
			}
		})
	}
}

func TestDeflateOffers(t *testing.T) {
	cases := []struct {
		offer string
		ok    bool
	}{
		{"permessage-deflate", true},
		{"permessage-deflate; client_max_window_bits", true},
		{"permessage-deflate; client_max_window_bits=10; server_no_context_takeover", true},
		{"permessage-deflate; server_max_window_bits=10", false},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", true},
		{"permessage-deflate; server_max_window_bits=15", true},
		{"permessage-deflate; unknown_param", false},
		{"x-webkit-deflate-frame", false},
		{"", false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.offer != "" {
			h.Set("Sec-WebSocket-Extensions", tc.offer)
		}
		if got := acceptDeflate(h); got != tc.ok {
			t.Errorf("%q: accepted = %v, want %v", tc.offer, got, tc.ok)
		}
	}
}

// A real handshake over loopback: the 101 carries the right accept key,
// the subprotocol, the extension and the headers the handler set, and a
// frame sent in the same packet as the request is not lost.
func TestAcceptOverLoopback(t *testing.T) {
	ups := make(chan Upgraded, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "io=node-1; Path=/")
		up, err := Accept(w, r, Response{Subprotocol: "wsgate.v1", Compression: true})
		if err != nil {
			t.Errorf("Accept: %v", err)
			return
		}
		ups <- up
	}))
	defer srv.Close()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	req := "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Protocol: wsgate.v1\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), clientFrame(fin(OpText), []byte("early"))...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(key + acceptGUID))
	for name, want := range map[string]string{
		"Sec-WebSocket-Accept":     base64.StdEncoding.EncodeToString(sum[:]),
		"Sec-WebSocket-Protocol":   "wsgate.v1",
		"Sec-WebSocket-Extensions": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"Set-Cookie":               "io=node-1; Path=/",
		"Upgrade":                  "websocket",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	up := <-ups
	defer up.Conn.Close()
	if !up.Compressed {
		t.Fatal("compression not negotiated")
	}
	rd := NewReader(up.Conn, up.Buffered, ReaderOptions{MaxMessageBytes: 100, Compressed: true})
	if _, p, err := rd.Next(); err != nil || string(p) != "early" {
		t.Fatalf("first frame = %q, %v", p, err)
	}
}

func TestAppendClosePayloadCutsAtARuneBoundary(t *testing.T) {
	p := AppendClosePayload(nil, StatusNormalClosure, strings.Repeat("é", 100))
	if len(p) > MaxControlPayload {
		t.Fatalf("%d bytes", len(p))
	}
	if _, err := parseClose(p); err != nil {
		t.Fatalf("cut reason is invalid: %v", err)
	}
}
