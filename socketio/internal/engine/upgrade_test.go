package engine

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// probe opens the upgrade socket of a polling session and completes the
// probe exchange.
func (h *harness) probe(sid string) *websocket.Conn {
	h.t.Helper()
	c, err := h.dial("EIO=4&transport=websocket&sid=" + sid)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.CloseNow() })
	writeWS(h.t, c, websocket.MessageText, "2probe")
	if _, got := readWS(h.t, c); got != "3probe" {
		h.t.Fatalf("probe answered %q", got)
	}
	return c
}

func TestUpgrade(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute}, true)
	t.Run("probe_releases_the_held_GET_and_5_moves_the_session", func(t *testing.T) {
		sid, rec := h.handshake()
		held := make(chan string, 1)
		go func() { _, body := h.get(sid); held <- body }()
		waitHeld(t, h.sessionOf(sid))
		c := h.probe(sid)
		if body := <-held; body != "6" {
			t.Fatalf("held GET answered %q, want the noop", body)
		}
		writeWS(t, c, websocket.MessageText, "5")
		writeWS(t, c, websocket.MessageText, "4hello")
		if _, got := readWS(t, c); got != "4hello" {
			t.Fatalf("echo %q", got)
		}
		if rec.s.Transport() != eio.WebSocket {
			t.Fatal("the session did not move to the WebSocket")
		}
		status, body := h.get(sid)
		expectError(t, status, body, eio.CodeBadRequest)
		status, body = h.post(sid, "4late")
		expectError(t, status, body, eio.CodeBadRequest)
	})
	t.Run("GET_during_the_upgrade_gets_a_noop", func(t *testing.T) {
		sid, _ := h.handshake()
		c := h.probe(sid)
		if status, body := h.get(sid); status != 200 || body != "6" {
			t.Fatalf("GET during the upgrade: %d %q", status, body)
		}
		writeWS(t, c, websocket.MessageText, "5")
		writeWS(t, c, websocket.MessageText, "4x")
		readWS(t, c)
	})
	t.Run("GET_racing_with_5_is_refused", func(t *testing.T) {
		// A hold longer than the test's waits: the GET is still held
		// when the "5" comes, however loaded the machine.
		h := newHarness(t, Options{PingInterval: time.Minute, raceHold: time.Minute}, true)
		sid, _ := h.handshake()
		c := h.probe(sid)
		// The GET is held first; the "5" then arrives and refuses it.
		res := make(chan [2]string, 1)
		go func() {
			status, body := h.get(sid)
			res <- [2]string{strconv.Itoa(status), body}
		}()
		waitHeld(t, h.sessionOf(sid))
		writeWS(t, c, websocket.MessageText, "5")
		got := <-res
		status, _ := strconv.Atoi(got[0])
		expectError(t, status, got[1], eio.CodeBadRequest)
	})
	t.Run("second_WebSocket_after_the_upgrade_is_closed_and_the_first_works", func(t *testing.T) {
		sid, _ := h.handshake()
		c := h.probe(sid)
		writeWS(t, c, websocket.MessageText, "5")
		c2, err := h.dial("EIO=4&transport=websocket&sid=" + sid)
		if err != nil {
			t.Fatalf("second socket refused (the official client needs it accepted): %v", err)
		}
		closeStatus(t, c2)
		writeWS(t, c, websocket.MessageText, "4still")
		if _, got := readWS(t, c); got != "4still" {
			t.Fatalf("echo %q", got)
		}
	})
}

func TestUpgradeFailures(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute}, true)
	t.Run("a_bad_probe_leaves_the_session_on_polling", func(t *testing.T) {
		sid, rec := h.handshake()
		c, err := h.dial("EIO=4&transport=websocket&sid=" + sid)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		writeWS(t, c, websocket.MessageText, "4not a probe")
		closeStatus(t, c)
		if len(rec.got()) != 0 {
			t.Fatal("a probe-socket message was delivered")
		}
		if status, body := h.post(sid, "4polling"); status != 200 || body != "ok" {
			t.Fatalf("POST after the failed upgrade: %d %q", status, body)
		}
		if _, body := h.get(sid); body != "4polling" {
			t.Fatalf("GET after the failed upgrade: %q", body)
		}
	})
}

func TestUpgradeTimeout(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute, UpgradeTimeout: 50 * time.Millisecond}, true)
	sid, rec := h.handshake()
	c := h.probe(sid)
	closeStatus(t, c)
	if err := rec.s.Send(textFrame("after")); err != nil {
		t.Fatal(err)
	}
	if _, body := h.get(sid); body != "4after" {
		t.Fatalf("GET after the upgrade timed out: %q", body)
	}
	if rec.s.Transport() != eio.Polling {
		t.Fatal("not on polling")
	}
}

// TestUpgradeLosesNothing upgrades while the server sends without pause:
// every message arrives once, in order, part over polling and the rest on
// the WebSocket. The sender queues as fast as the session's bounded queue
// takes messages (a refused one is sent again), so it is sending at every
// step of the upgrade, the switch to the WebSocket included. The client
// behaves as engine.io-client does: after "3probe" it lets its GET in
// flight finish, stops polling, then sends "5".
func TestUpgradeLosesNothing(t *testing.T) {
	const afterUpgrade, maxMessages = 500, 1_000_000
	h := newHarness(t, Options{PingInterval: time.Minute, MaxQueued: 64}, false)
	for round := range 5 {
		t.Run(fmt.Sprint("round_", round), func(t *testing.T) {
			sid, rec := h.handshake()
			c := &upgradeClient{stop: make(chan struct{})}
			sent := make(chan int, 1)
			go func() {
				i := 0
				defer func() { sent <- i }()
				for i < maxMessages {
					select {
					case <-c.stop:
						return
					default:
					}
					switch err := rec.s.Send(textFrame(strconv.Itoa(i))); {
					case err == nil:
						i++
					case errors.Is(err, ErrFull):
						runtime.Gosched()
					default:
						t.Errorf("Send %d: %v", i, err)
						return
					}
				}
			}()
			pause, polled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(polled)
				for {
					status, body := h.get(sid)
					if status != 200 {
						t.Errorf("GET: %d %q", status, body)
						return
					}
					c.add(body)
					select {
					case <-pause:
						return
					default:
					}
				}
			}()
			testutil.Eventually(t, 5*time.Second, "messages over polling", func() bool { return c.count() > 50 })
			ws := h.probe(sid)
			close(pause)
			<-polled
			writeWS(t, ws, websocket.MessageText, "5")
			upgradedAt := c.count()
			for c.count() < upgradedAt+afterUpgrade {
				_, m := readWS(t, ws)
				c.add(m)
			}
			close(c.stop)
			n := <-sent
			for c.count() < n {
				_, m := readWS(t, ws)
				c.add(m)
			}
			c.check(t, n)
		})
	}
}

// upgradeClient records the messages of TestUpgradeLosesNothing.
type upgradeClient struct {
	stop chan struct{} // closed to stop the sender

	mu  sync.Mutex
	got []string
}

// add records the messages of a payload or frame.
func (c *upgradeClient) add(body string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range strings.SplitSeq(body, "\x1e") {
		if p == "6" || p == "" {
			continue
		}
		c.got = append(c.got, p)
	}
}

func (c *upgradeClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// check verifies that messages 0..n-1 arrived once each, in order.
func (c *upgradeClient) check(t *testing.T, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.got {
		if m != "4"+strconv.Itoa(i) {
			t.Fatalf("message %d is %q (of %d received, %d sent)", i, m, len(c.got), n)
		}
	}
	if len(c.got) != n {
		t.Fatalf("%d messages, want %d", len(c.got), n)
	}
}

func TestCraftedUpgrades(t *testing.T) {
	// The reference server's advisories (CVE-2022-41940, CVE-2023-31125):
	// crafted upgrade requests that crashed it. Each is refused with an
	// Engine.IO error, touches no session and leaves nothing running.
	h := newHarness(t, Options{PingInterval: time.Minute}, true)
	sid, rec := h.handshake()
	closedSID, closedRec := h.handshake()
	closedRec.s.closeNow(ReasonServerClose, wsEnd{})
	wsConn, _, wsRec := h.dialSession("")
	_ = wsConn
	upgradeHeaders := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	base := runtime.NumGoroutine()
	cases := []struct {
		name, query, headers string
		code                 eio.ErrorCode
	}{
		{"upgrade_on_the_polling_transport", pollQuery(sid), upgradeHeaders, eio.CodeBadRequest},
		{"upgrade_on_an_unknown_transport", "EIO=4&transport=abc&sid=" + sid, upgradeHeaders, eio.CodeUnknownTransport},
		{"upgrade_of_a_closed_session", "EIO=4&transport=websocket&sid=" + closedSID, upgradeHeaders, eio.CodeUnknownSID},
		{"upgrade_without_a_key", "EIO=4&transport=websocket&sid=" + sid, "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", eio.CodeBadRequest},
		{"upgrade_with_EIO_3", "EIO=3&transport=websocket&sid=" + sid, upgradeHeaders, eio.CodeBadRequest},
		{"websocket_without_upgrade_headers", "EIO=4&transport=websocket&sid=" + sid, "", eio.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := rawRequest(t, h, http.MethodGet, tc.query, tc.headers, "")
			defer conn.Close()
			status, body := readResponse(t, conn)
			expectError(t, status, body, tc.code)
		})
	}
	t.Run("upgrade_of_a_WebSocket_session_is_accepted_then_closed", func(t *testing.T) {
		c, err := h.dial("EIO=4&transport=websocket&sid=" + wsRec.s.sid)
		if err != nil {
			t.Fatal(err)
		}
		closeStatus(t, c)
	})
	t.Run("nothing_changed", func(t *testing.T) {
		if s := h.sessionOf(sid); s == nil || s.Transport() != eio.Polling {
			t.Fatal("the polling session changed")
		}
		select {
		case info := <-rec.closed:
			t.Fatalf("the polling session closed: %+v", info)
		default:
		}
		writeWS(t, wsConn, websocket.MessageText, "4ws")
		if _, got := readWS(t, wsConn); got != "4ws" {
			t.Fatalf("the WebSocket session: %q", got)
		}
		if h.srv.Len() != 2 {
			t.Fatalf("%d sessions, want 2", h.srv.Len())
		}
		goroutinesSettle(t, base, 2)
	})
	if err := rec.s.Send(textFrame("ok")); errors.Is(err, ErrClosed) {
		t.Fatal("the polling session was closed")
	}
}
