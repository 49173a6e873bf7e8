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
	"sync"
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

// Every kind of flood one authenticated connection can send is closed, and
// neither the live heap nor the number of goroutines grows with it while it
// lasts. The time to close is logged (bench/ reports it as a figure).
func TestFloods(t *testing.T) {
	e := newEnv(t, nil)
	tok := token(t, claims{sub: "attacker"})
	junk := []byte(`{"type":"event","event":"x","data":` + strings.Repeat("[", 40) + `}`)
	cases := []struct {
		name  string
		start func(rc *rawConn) // sent once, before the flood
		unit  func(rc *rawConn) // sent over and over
		code  int
	}{
		{name: "pings_close_1008", unit: func(rc *rawConn) { rc.frame(true, opPing, []byte("p")) }, code: 1008},
		{name: "unsolicited_pongs_close_1008", unit: func(rc *rawConn) { rc.frame(true, opPong, []byte("p")) }, code: 1008},
		{name: "empty_continuations_close_1008",
			start: func(rc *rawConn) { rc.frame(false, opText, []byte("{")) },
			unit:  func(rc *rawConn) { rc.frame(false, opCont, nil) }, code: 1008},
		{name: "one_byte_continuations_close_1008",
			start: func(rc *rawConn) { rc.frame(false, opText, []byte("{")) },
			unit:  func(rc *rawConn) { rc.frame(false, opCont, []byte(" ")) }, code: 1008},
		{name: "junk_messages_close_1008", unit: func(rc *rawConn) { rc.frame(true, opText, junk) }, code: 1008},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base, baseG := heapAfterGC(), runtime.NumGoroutine()
			rc := e.dialRawTCP(tok)
			defer rc.nc.Close()
			if _, err := rc.readWelcome(); err != nil {
				t.Fatal(err)
			}
			peak := watchGoroutines(t)
			if tc.start != nil {
				tc.start(rc)
			}
			start := time.Now()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < 2_000_000 && time.Since(start) < 10*time.Second; i++ {
					tc.unit(rc)
					if i%256 == 255 && rc.flush() != nil {
						return // the server closed: the flood is over
					}
				}
				_ = rc.flush()
			}()
			code := rc.readUntilClosed(15 * time.Second)
			took := time.Since(start)
			rc.nc.Close()
			<-done
			if code != tc.code {
				t.Fatalf("close = %d, want %d", code, tc.code)
			}
			if g := peak(); g > baseG+16 {
				t.Fatalf("goroutines peaked at %d during the flood (%d before)", g, baseG)
			}
			assertBounded(t, base, 8<<20)
			t.Logf("closed with %d after %v", code, took.Round(time.Millisecond))
		})
	}
	t.Run("a_frame_declaring_more_than_the_limit_closes_1009_at_its_header", func(t *testing.T) {
		rc := e.dialRawTCP(tok)
		defer rc.nc.Close()
		if _, err := rc.readWelcome(); err != nil {
			t.Fatal(err)
		}
		// A header announcing 1 GiB, and not one byte of payload.
		hdr := binary.BigEndian.AppendUint64([]byte{0x80 | opText, 0x80 | 127}, 1<<30)
		_, _ = rc.bw.Write(append(hdr, 1, 2, 3, 4))
		if err := rc.flush(); err != nil {
			t.Fatal(err)
		}
		if code := rc.readUntilClosed(10 * time.Second); code != 1009 {
			t.Fatalf("close = %d, want 1009", code)
		}
	})
	eventually(t, "flood connections to be cleaned up", func() bool { return e.hub.Connections() == 0 })
}

// watchGoroutines samples the goroutine count until the test ends and
// returns a func reporting the highest count seen so far.
func watchGoroutines(t *testing.T) func() int {
	var mu sync.Mutex
	peak := runtime.NumGoroutine()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				n := runtime.NumGoroutine()
				mu.Lock()
				peak = max(peak, n)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// readWelcome reads frames until the welcome.
func (rc *rawConn) readWelcome() (string, error) {
	_ = rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		op, payload, err := rc.readFrame()
		if err != nil {
			return "", err
		}
		if op == opText && strings.Contains(string(payload), `"type":"welcome"`) {
			return string(payload), nil
		}
	}
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
