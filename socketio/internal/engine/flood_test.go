package engine

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestPOSTFloodMemoryIsBounded holds large POST bodies half-sent on many
// sessions at once: no more than BodyBudget bytes of them are taken in,
// the rest are refused at once with 503 (their sessions closed), and the
// heap stays within the budget. Once the held bodies complete, POSTs are
// taken again.
func TestPOSTFloodMemoryIsBounded(t *testing.T) {
	const (
		payload = 500_000
		budget  = 2 * payload
		floods  = 40
	)
	h := newHarness(t, Options{PingInterval: time.Minute, MaxPayload: payload, BodyBudget: budget}, false)
	body := "4" + strings.Repeat("x", payload-1)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var held []net.Conn
	refused := 0
	for i := range floods {
		sid, _ := h.handshake()
		conn := rawRequest(t, h, http.MethodPost, pollQuery(sid), fmt.Sprintf("Content-Length: %d\r\n", payload), body[:payload/2])
		defer conn.Close()
		if i < 2 {
			// Within the budget: the server reads it and waits for the rest.
			s := h.sessionOf(sid)
			testutil.Eventually(t, 5*time.Second, "body being read", func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.posting
			})
			held = append(held, conn)
			continue
		}
		if status := readStatus(t, conn); status == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused != floods-2 {
		t.Fatalf("%d POSTs refused, want %d (all beyond the budget)", refused, floods-2)
	}
	if got := h.srv.bodyBytes.Load(); got > budget {
		t.Fatalf("%d body bytes reserved, budget %d", got, budget)
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grown := int64(during.HeapAlloc) - int64(before.HeapAlloc); grown > budget+budget/2 {
		t.Fatalf("heap grew by %d bytes with %d large POSTs in flight, budget %d", grown, floods, budget)
	}
	for _, conn := range held {
		if _, err := conn.Write([]byte(body[payload/2:])); err != nil {
			t.Fatal(err)
		}
		if status, got := readResponse(t, conn); status != 200 || got != "ok" {
			t.Fatalf("held POST: %d %q", status, got)
		}
	}
	testutil.Eventually(t, 5*time.Second, "budget released", func() bool { return h.srv.bodyBytes.Load() == 0 })
	sid, rec := h.handshake()
	if status, _ := h.post(sid, body); status != 200 || len(rec.got()) != 1 {
		t.Fatalf("POST after the flood: %d", status)
	}
}

// TestPOSTRefusedByLengthReadsNothing: a declared length over MaxPayload
// is refused before the body is read, however large it claims to be.
func TestPOSTRefusedByLengthReadsNothing(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute, MaxPayload: 1000}, false)
	sid, rec := h.handshake()
	conn := rawRequest(t, h, http.MethodPost, pollQuery(sid), "Content-Length: 1000000000000\r\n", "4x")
	defer conn.Close()
	if status := readStatus(t, conn); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", status)
	}
	rec.waitClosed(t)
	if got := h.srv.bodyBytes.Load(); got != 0 {
		t.Fatalf("%d body bytes reserved", got)
	}
}

// TestSlowPOSTTimesOut: a body that stops coming is answered 408 after
// BodyTimeout and closes its session, so it cannot hold its reservation.
func TestSlowPOSTTimesOut(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Minute, BodyTimeout: 50 * time.Millisecond}, false)
	sid, rec := h.handshake()
	conn := rawRequest(t, h, http.MethodPost, pollQuery(sid), "Content-Length: 100\r\n", "4abc")
	defer conn.Close()
	if status := readStatus(t, conn); status != http.StatusRequestTimeout {
		t.Fatalf("status %d", status)
	}
	if info := rec.waitClosed(t); info.Reason != ReasonTransportError {
		t.Fatalf("reason %q", info.Reason)
	}
	if got := h.srv.bodyBytes.Load(); got != 0 {
		t.Fatalf("%d body bytes reserved", got)
	}
}
