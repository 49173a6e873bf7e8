package hub_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

const (
	opPong = 0xA
	rsv    = 0x70
	fin    = 0x80
)

type tick struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad"`
}

// tickPads cycles through frame sizes on both sides of every length encoding
// and of the send path's 16 KiB batch buffer.
var tickPads = []int{1, 100, 300, 5000, 20000, 70000}

// floodUser sends n ticks to user's room from a goroutine of its own, their
// pads cycling through pads.
func floodUser(e *env, user string, n int, pads []int) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := range n {
			pad := strings.Repeat("x", pads[i%len(pads)])
			if err := e.hub.ToUser(ctx, user, "tick", tick{Seq: i, Pad: pad}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// dialWelcomed dials a raw connection as user and reads its welcome.
func dialWelcomed(t *testing.T, e *env, user string) *rawConn {
	t.Helper()
	rc := e.dialRawTCP(token(t, claims{sub: user}))
	_ = rc.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if op, _, err := rc.readFrame(); err != nil || op != opText {
		t.Fatalf("welcome: op %#x, %v", op, err)
	}
	return rc
}

// readToClose reads until the server ends the TCP connection, answering its
// close frame, and fails the test if any frame follows that close frame. It
// returns the close code (0 without a close frame) and the text frames read.
func readToClose(t *testing.T, rc *rawConn) (code, texts int) {
	t.Helper()
	closed := false
	for {
		op, payload, err := rc.readFrame()
		if err != nil {
			return code, texts
		}
		if closed {
			t.Fatalf("frame %#x after the close frame (after %d text frames)", op, texts)
		}
		switch op {
		case opClose:
			closed = true
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			rc.frame(true, opClose, payload) // complete the handshake
			_ = rc.flush()
		case opText:
			texts++
		}
	}
}

// The send queue writes text frames itself, several per syscall, on the
// socket coder/websocket writes pongs and pings to. Whatever the interleaving,
// every frame must arrive whole, in order, unmasked, final, without RSV bits,
// and every ping must be answered.
func TestQueuedFramesAndControlFramesShareTheSocket(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.ClientPingRate = hub.Limit{Rate: math.Inf(1), Burst: 1}
		o.SendQueueMessages = 10_000
		o.SendQueueBytes = 64 << 20
	})
	rc := e.dialRawTCP(token(t, claims{sub: "alice"}))
	const n = 600

	// One goroutine writes: client pings every millisecond, and pongs for
	// the server's pings, which the reader hands over.
	pongs := make(chan []byte, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pingsSent []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case p := <-pongs:
				rc.frame(true, opPong, p)
			case <-tk.C:
				p := "c" + string(rune('0'+len(pingsSent)%10)) + strings.Repeat("p", len(pingsSent)%100)
				pingsSent = append(pingsSent, p)
				rc.frame(true, opPing, []byte(p))
			}
			if err := rc.flush(); err != nil {
				t.Errorf("client write: %v", err)
				return
			}
		}
	}()

	var flood <-chan error
	next, pongsSeen, serverPings := 0, []string{}, 0
	_ = rc.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for next < n {
		b0, payload, err := rc.readFrameHeader()
		if err != nil {
			t.Fatalf("after %d ticks: %v", next, err)
		}
		if b0&fin == 0 || b0&rsv != 0 {
			t.Fatalf("frame header %#x: want FIN and no RSV bits", b0)
		}
		switch b0 & 0x0f {
		case opPong:
			pongsSeen = append(pongsSeen, string(payload))
		case opPing:
			serverPings++
			pongs <- payload
		case opText:
			var f struct {
				Type string `json:"type"`
				Data tick   `json:"data"`
			}
			if err := json.Unmarshal(payload, &f); err != nil {
				t.Fatalf("text frame of %d bytes is not JSON: %v", len(payload), err)
			}
			if f.Type == "welcome" {
				flood = floodUser(e, "alice", n, tickPads)
				continue
			}
			if f.Data.Seq != next || len(f.Data.Pad) != tickPads[next%len(tickPads)] {
				t.Fatalf("tick %d (pad %d), want %d (pad %d)", f.Data.Seq, len(f.Data.Pad), next, tickPads[next%len(tickPads)])
			}
			next++
		default:
			t.Fatalf("unexpected frame %#x", b0)
		}
	}
	if err := <-flood; err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	// Pongs answer pings in order, each with a ping's own payload, and the
	// last ping is answered: a ping still waiting when the next arrives may
	// go unanswered (RFC 6455 5.5.3), never answered out of order.
	last := pingsSent[len(pingsSent)-1]
	for len(pongsSeen) == 0 || pongsSeen[len(pongsSeen)-1] != last {
		b0, payload, err := rc.readFrameHeader()
		if err != nil {
			t.Fatalf("%d pongs for %d pings, the last one unanswered: %v", len(pongsSeen), len(pingsSent), err)
		}
		if b0&0x0f == opPong {
			pongsSeen = append(pongsSeen, string(payload))
		}
	}
	j := 0
	for _, p := range pongsSeen {
		for j < len(pingsSent) && pingsSent[j] != p {
			j++
		}
		if j == len(pingsSent) {
			t.Fatalf("pong %q answers no ping, or is out of order", p)
		}
		j++
	}
	t.Logf("%d ticks, %d client pings answered, %d server pings", n, len(pingsSent), serverPings)
}

// Once a close frame is out, no data frame may follow it (RFC 6455 5.5.1),
// even while the send queue is busy with a flood.
func TestNoDataFrameAfterTheCloseFrame(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 100_000
		o.SendQueueBytes = 256 << 20
	})
	for round := range 5 {
		rc := dialWelcomed(t, e, "bob")
		flood := floodUser(e, "bob", 3000, []int{4000})
		for range round * 100 {
			if _, _, err := rc.readFrame(); err != nil {
				t.Fatal(err)
			}
		}
		// The client closes mid-flood without reading: the writer is
		// blocked on full socket buffers with more frames queued, and
		// coder/websocket's answer waits for it.
		time.Sleep(50 * time.Millisecond)
		rc.frame(true, opClose, binary.BigEndian.AppendUint16(nil, 1000))
		if err := rc.flush(); err != nil {
			t.Fatal(err)
		}
		if code, _ := readToClose(t, rc); code != 1000 {
			t.Fatalf("round %d: close code %d, want 1000", round, code)
		}
		<-flood
	}
}

// A slow consumer's close frame is sent while its writer still holds queued
// frames: they must not follow the close frame.
func TestSlowConsumerCloseFrameIsTheLastFrame(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 50
		o.SendQueueBytes = 64 << 20
	})
	// The race this guards against is timing-dependent: several rounds
	// catch a regression in most runs.
	for round := range 6 {
		rc := dialWelcomed(t, e, "carol")
		// Not reading fills the socket buffers; the writer blocks with
		// frames queued behind it until the queue overflows.
		if err := <-floodUser(e, "carol", 3000, []int{4000}); err != nil {
			t.Fatal(err)
		}
		code, ticks := readToClose(t, rc)
		if code != int(hub.CloseSlowConsumer) {
			t.Fatalf("round %d: close code %d after %d ticks, want %d", round, code, ticks, hub.CloseSlowConsumer)
		}
	}
}

// Peers that vanish with a TCP reset in the middle of a fan-out fail the
// writers' non-blocking and blocking writes alike: every connection ends,
// the survivors get every frame, and nothing is left behind.
func TestResetPeersDuringFanOut(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 10_000
		o.SendQueueBytes = 64 << 20
	})
	baseGoroutines := runtime.NumGoroutine()
	const peers, survivors, ticks = 120, 20, 400
	conns := make([]*rawConn, peers)
	for i := range conns {
		conns[i] = dialWelcomed(t, e, "dave")
	}
	flood := floodUser(e, "dave", ticks, []int{10, 3000, 20000})
	// The survivors read everything; the others read a little, then reset.
	var wg sync.WaitGroup
	errs := make(chan error, peers)
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i >= survivors {
				for range i % 7 {
					_, _, _ = rc.readFrame()
				}
				_ = rc.nc.(*net.TCPConn).SetLinger(0)
				_ = rc.nc.Close()
				return
			}
			for n := 0; n < ticks; {
				op, _, err := rc.readFrame()
				if err != nil {
					errs <- fmt.Errorf("survivor %d after %d ticks: %w", i, n, err)
					return
				}
				if op == opText {
					n++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-flood; err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reset connections to end", func() bool { return e.hub.Connections() == survivors })
	for _, rc := range conns[:survivors] {
		_ = rc.nc.Close()
	}
	eventually(t, "every connection to end", func() bool { return e.hub.Connections() == 0 })
	eventually(t, "goroutines to wind down", func() bool { return runtime.NumGoroutine() <= baseGoroutines+5 })
}

// A pong waits for at most one write of queued frames, not for the whole
// backlog draining to a slow reader: coder/websocket gives up on a control
// frame after 5 s and closes the connection.
func TestPongIsNotQueuedBehindTheBacklog(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 100_000
		o.SendQueueBytes = 256 << 20
		o.WriteTimeout = 30 * time.Second
	})
	rc := dialWelcomed(t, e, "erin")
	const n = 3000 // 30 MB: far more than loopback socket buffers hold
	if err := <-floodUser(e, "erin", n, []int{10_000}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the buffers fill; the writer blocks
	rc.frame(true, opPing, []byte("hello"))
	if err := rc.flush(); err != nil {
		t.Fatal(err)
	}
	for texts := 0; ; {
		op, payload, err := rc.readFrame()
		if err != nil {
			t.Fatalf("after %d text frames: %v", texts, err)
		}
		if op == opPong {
			if texts >= n*2/3 {
				t.Fatalf("pong after %d of %d queued frames: it waited for the backlog", texts, n)
			}
			if string(payload) != "hello" {
				t.Fatalf("pong payload %q", payload)
			}
			t.Logf("pong after %d of %d queued frames", texts, n)
			return
		}
		texts++
	}
}
