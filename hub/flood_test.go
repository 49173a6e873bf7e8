package hub_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/hub"
)

// rawConn speaks WebSocket frames by hand, so tests can send what no
// well-behaved client library would: floods of control frames, endless
// continuation frames, junk.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func (e *env) dialRawTCP(tok string) *rawConn {
	e.t.Helper()
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wsgate.v1\r\n"+
		"Origin: %s\r\nAuthorization: Bearer %s\r\n\r\n", addr, base64.StdEncoding.EncodeToString(key[:]), e.srv.URL, tok)
	if _, err := nc.Write([]byte(req)); err != nil {
		e.t.Fatal(err)
	}
	rc := &rawConn{t: e.t, nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriterSize(nc, 64<<10)}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		e.t.Fatalf("handshake: %v %v", resp, err)
	}
	return rc
}

const (
	opCont  = 0x0
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
)

// frame writes one masked client frame into the buffer.
func (rc *rawConn) frame(fin bool, op byte, payload []byte) {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	hdr := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, c := range payload {
		masked[i] = c ^ mask[i%4]
	}
	_, _ = rc.bw.Write(hdr)
	_, _ = rc.bw.Write(masked)
}

// flush sends the buffer; an error means the server already closed, which
// floods are expected to provoke.
func (rc *rawConn) flush() error {
	_ = rc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return rc.bw.Flush()
}

// readFrame reads one server frame (servers never mask).
func (rc *rawConn) readFrame() (op byte, payload []byte, err error) {
	b0, payload, err := rc.readFrameHeader()
	return b0 & 0x0f, payload, err
}

// readFrameHeader reads one server frame and returns its first header byte
// (FIN, RSV bits and opcode) whole. A masked server frame is an error.
func (rc *rawConn) readFrameHeader() (b0 byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err := ioReadFull(rc.br, hdr[:]); err != nil {
		return 0, nil, err
	}
	if hdr[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("masked server frame")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err := ioReadFull(rc.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err := ioReadFull(rc.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = ioReadFull(rc.br, payload)
	return hdr[0], payload, err
}

// readUntilClosed drains server frames until the server's close frame or EOF
// and returns the close code (0 when the TCP connection ended without one).
func (rc *rawConn) readUntilClosed(d time.Duration) int {
	_ = rc.nc.SetReadDeadline(time.Now().Add(d))
	for {
		op, payload, err := rc.readFrame()
		if err != nil {
			return 0
		}
		if op == opClose && len(payload) >= 2 {
			return int(binary.BigEndian.Uint16(payload))
		}
	}
}

func ioReadFull(r *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// assertBounded fails if the live heap grew by more than limit since base.
func assertBounded(t *testing.T, base uint64, limit uint64) {
	t.Helper()
	if after := heapAfterGC(); after > base && after-base > limit {
		t.Fatalf("live heap grew by %d KiB, bound %d KiB", (after-base)>>10, limit>>10)
	}
}

func TestFloods(t *testing.T) {
	e := newEnv(t, nil)
	tok := token(t, claims{sub: "attacker"})
	base := heapAfterGC()

	t.Run("10000_junk_messages_close_1008_with_bounded_memory", func(t *testing.T) {
		rc := e.dialRawTCP(tok)
		defer rc.nc.Close()
		junk := []byte(`{"type":"event","event":"x","data":` + strings.Repeat("[", 40) + `}`)
		for i := 0; i < 10000; i++ {
			rc.frame(true, opText, junk)
			if i%500 == 499 && rc.flush() != nil {
				break
			}
		}
		_ = rc.flush()
		if code := rc.readUntilClosed(10 * time.Second); code != 1008 {
			t.Fatalf("close = %d, want 1008", code)
		}
		assertBounded(t, base, 8<<20)
	})

	t.Run("100000_empty_continuation_frames_keep_memory_bounded", func(t *testing.T) {
		rc := e.dialRawTCP(tok)
		defer rc.nc.Close()
		rc.frame(false, opText, nil)
		for i := 0; i < 100000; i++ {
			rc.frame(false, opCont, nil)
			if i%5000 == 4999 && rc.flush() != nil {
				t.Fatal("server dropped a legal (if silly) message")
			}
		}
		rc.frame(true, opCont, []byte(`{"type":"event","id":1,"event":"nope"}`))
		if err := rc.flush(); err != nil {
			t.Fatal(err)
		}
		assertBounded(t, base, 8<<20)
		// The message still completes and is answered like any other, after
		// the welcome.
		_ = rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var answers []string
		for len(answers) < 2 {
			op, payload, err := rc.readFrame()
			if err != nil {
				t.Fatalf("after %q: %v", answers, err)
			}
			if op == opText {
				answers = append(answers, string(payload))
			}
		}
		if !strings.Contains(answers[1], `"code":"UNKNOWN_EVENT"`) {
			t.Fatalf("answers = %q", answers)
		}
	})

	t.Run("50000_pings_are_metered_and_close_1008", func(t *testing.T) {
		rc := e.dialRawTCP(tok)
		defer rc.nc.Close()
		for i := 0; i < 50000; i++ {
			rc.frame(true, opPing, []byte("p"))
			if i%1000 == 999 && rc.flush() != nil {
				break
			}
		}
		_ = rc.flush()
		if code := rc.readUntilClosed(10 * time.Second); code != 1008 {
			t.Fatalf("close = %d, want 1008", code)
		}
		assertBounded(t, base, 8<<20)
	})
	eventually(t, "flood connections to be cleaned up", func() bool { return e.hub.Connections() == 0 })
}

func TestSlowConsumer(t *testing.T) {
	big := strings.Repeat("x", 16<<10)
	t.Run("never_reading_client_is_disconnected_and_memory_bounded", func(t *testing.T) {
		e := newEnv(t, func(o *hub.Options) {
			o.SendQueueMessages = 16
			o.SendQueueBytes = 256 << 10
		})
		c := e.connect(claims{sub: "slow"})
		_ = c // never reads again
		base := heapAfterGC()
		sent := 0
		deadline := time.Now().Add(20 * time.Second)
		for e.hub.Connections() > 0 && sent < 20000 && time.Now().Before(deadline) {
			if err := e.hub.ToUser(t.Context(), "slow", "blob", big); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		eventually(t, "the slow consumer to be dropped", func() bool { return e.hub.Connections() == 0 })
		// The disconnect line is written after the connection leaves the table.
		eventually(t, "the reason in the log", func() bool { return strings.Contains(e.log.String(), `"reason":"slow_consumer"`) })
		assertBounded(t, base, 8<<20)
		t.Logf("published %d messages of 16 KiB before the connection was gone", sent)
	})
	t.Run("drop_policy_keeps_the_connection", func(t *testing.T) {
		e := newEnv(t, func(o *hub.Options) {
			o.SendQueueMessages = 4
			o.SendQueueBytes = 256 << 10
			o.SlowConsumer = hub.Drop
		})
		c := e.connect(claims{sub: "slow"})
		for range 2000 {
			if err := e.hub.ToUser(t.Context(), "slow", "blob", big); err != nil {
				t.Fatal(err)
			}
		}
		if e.hub.Connections() != 1 {
			t.Fatal("drop policy disconnected the client")
		}
		// Once it reads again, the connection still works.
		if f := c.next(); f.Event != "blob" {
			t.Fatalf("got %+v", f)
		}
	})
}

// Under the Drop policy broadcasts are dropped, but replies are never lost
// on a live connection: a client that asks and does not read is closed
// instead (R3).
func TestDropPolicyNeverDropsReplies(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 4
		o.SendQueueBytes = 64 << 10
		o.SlowConsumer = hub.Drop
		o.EventRate = hub.Limit{Rate: 1000, Burst: 1000}
		o.MessageRate = hub.Limit{Rate: 1000, Burst: 1000}
	})
	hub.Handle(e.hub, "big", func(ctx hub.Context, in struct{}) (string, error) {
		return strings.Repeat("y", 16<<10), nil
	})
	c := e.connect(claims{sub: "asker"})
	c.ws.SetReadLimit(1 << 20)
	for i := 1; i <= 2000 && e.hub.Connections() > 0; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"event","id":`+strconv.Itoa(i)+`,"event":"big"}`))
		cancel()
		if err != nil {
			break
		}
	}
	eventually(t, "the asker to be disconnected rather than lose acks", func() bool { return e.hub.Connections() == 0 })
	eventually(t, "the reason in the log", func() bool { return strings.Contains(e.log.String(), `"reason":"slow_consumer"`) })
}
