package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
)

// TestCloseLeavesNoGoroutines takes clients through every way a client
// lives and ends — connected, reconnecting after a kill, waiting out a long
// backoff, stopped by a terminal refusal, refused at Dial — then closes
// everything and checks the goroutine count returns to where it started.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	transport := &http.Transport{}
	httpClient := &http.Client{Transport: transport}
	baseline := runtime.NumGoroutine()
	ctx := context.Background()

	// A short handler deadline: the hub holds a dead connection's goroutines
	// until its handler in flight returns.
	h := newHub(t, func(o *hub.Options) { o.HandlerTimeout = 200 * time.Millisecond })
	s := startServer(t, h)
	var cs []*client.Client
	for i := range 10 {
		opts := s.options(t, "alice")
		opts.HTTPClient = httpClient
		opts.Backoff = fastBackoff
		c := dial(t, opts)
		if err := c.Join(ctx, "chat:1"); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			// Leave a call in flight when the server dies.
			go func() { _, _ = client.Call[struct{}](ctx, c, "slow", Text{"x"}) }()
		}
		cs = append(cs, c)
	}
	// Clients 10 and 11 end up waiting out a one-minute backoff, and being
	// stopped by a refusal.
	waiting := newRecorder()
	opts := s.options(t, "alice")
	opts.HTTPClient = httpClient
	opts.Backoff = client.Backoff{Min: time.Minute, Max: time.Minute}
	waiting.attach(&opts)
	cs = append(cs, dial(t, opts))
	stopped := newRecorder()
	opts = s.options(t, "alice")
	opts.HTTPClient = httpClient
	opts.Backoff = fastBackoff
	opts.Token = goodThen(token(t, "alice", time.Hour), func(int) string { return "bad" })
	stopped.attach(&opts)
	cs = append(cs, dial(t, opts))

	s.kill()
	s.restart(newHub(t, nil))
	waiting.waitPhase(t, client.Reconnecting, 1)
	stopped.waitPhase(t, client.Closed, 1)
	for _, c := range cs[:10] {
		if _, err := client.Call[Text](ctx, c, "echo", Text{"back"}); err != nil {
			t.Fatalf("after reconnect: %v", err)
		}
	}
	// And a Dial that is refused.
	opts = s.options(t, "alice")
	opts.HTTPClient = httpClient
	opts.Origin = "https://evil.example"
	if _, err := client.Dial(ctx, opts); err == nil {
		t.Fatal("Dial with a foreign origin succeeded")
	}

	for _, c := range cs {
		c.Close()
		select {
		case <-c.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("Done not closed after Close")
		}
	}
	s.kill()
	transport.CloseIdleConnections()
	if n := settleGoroutines(baseline + 2); n > baseline+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// blackhole is a TCP proxy that can stop forwarding without closing
// anything: the path goes dead the way it does behind a crashed NAT or a
// pulled cable, which only a heartbeat notices.
type blackhole struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			c.Close()
		}
	})
	return b
}

func (b *blackhole) accept() {
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.target)
		if err != nil {
			in.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, in, out)
		b.mu.Unlock()
		go b.pipe(in, out)
		go b.pipe(out, in)
	}
}

// pipe copies src to dst until src fails; while frozen, bytes and the
// closing of src are swallowed.
func (b *blackhole) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if b.frozen.Load() {
			if err != nil {
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			dst.Close()
			return
		}
	}
}

// TestDeadPathIsDetectedByTheHeartbeat: when the server's pings stop
// arriving and nothing closes the socket, the client gives up on the
// connection after twice the announced heartbeat (at least 5 s) and
// reconnects.
func TestDeadPathIsDetectedByTheHeartbeat(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 5 s heartbeat timeout")
	}
	h := newHub(t, func(o *hub.Options) {
		o.PingInterval = 200 * time.Millisecond
		o.PongTimeout = 300 * time.Millisecond
		o.HandlerTimeout = 200 * time.Millisecond
	})
	s := startServer(t, h)
	proxy := newBlackhole(t, s.addr)
	rec := newRecorder()
	tok := token(t, "alice", time.Hour)
	opts := client.Options{
		URL:     "ws://" + proxy.ln.Addr().String() + "/ws",
		Origin:  "http://" + proxy.ln.Addr().String(),
		Token:   staticToken(tok),
		Backoff: fastBackoff,
	}
	rec.attach(&opts)
	dial(t, opts)
	proxy.frozen.Store(true)
	frozeAt := time.Now()
	st := rec.waitPhase(t, client.Reconnecting, 1)
	if !errors.Is(st.Err, client.ErrHeartbeatTimeout) {
		t.Fatalf("Reconnecting = %+v, want ErrHeartbeatTimeout", st)
	}
	if waited := time.Since(frozeAt); waited < 4*time.Second {
		t.Fatalf("gave up after %v, before the heartbeat timeout", waited)
	}
	proxy.frozen.Store(false)
	rec.waitPhase(t, client.Connected, 2)
}
