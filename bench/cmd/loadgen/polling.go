package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The long-polling measurement (-polling N, Socket.IO contenders only): N
// sessions that stay on Engine.IO's polling transport, each holding a GET
// as engine.io-client does between messages, in a server process of their
// own. It reports the server's memory per session once every GET is held,
// and its CPU per delivered message when broadcasts reach every session
// one at a time (each message a GET response of its own, and a new GET)
// and ten in flight (queued messages go out together in one response).
//
// A polling client is one goroutine each: an HTTP exchange per message
// cannot be read from the epoll loop without an HTTP parser of its own, and
// at 1,000 sessions the goroutines cost the generator little next to the
// server's share, which is what is measured.

// pollResult is one contender's long-polling row.
type pollResult struct {
	Sessions  int
	SetupRate float64 // sessions per second: handshake, CONNECT, its answer
	RSS       float64 // server bytes per session, after GC
	RSSRaw    float64
	Heap      float64
	One, Ten  *fanout // one broadcast in flight; ten
	Closed    int64   // sessions that ended during the measurement
}

// pollPool is what the sessions of one measurement share.
type pollPool struct {
	hc     *http.Client
	addr   string // the server's host:port
	sink   *sink
	held   atomic.Int64   // GETs sent and not yet answered
	closed atomic.Int64   // sessions that ended
	loops  sync.WaitGroup // the sessions' poll loops
}

// pollClient is one Engine.IO long-polling session.
type pollClient struct {
	pool  *pollPool
	url   string       // the session's URL, with its sid
	pongs atomic.Int64 // pings answered
	// ready gets nil at the CONNECT's answer, or why the session ended
	// before it; only its first value is taken.
	ready chan error
}

// settle reports the session's setup outcome once.
func (pc *pollClient) settle(err error) {
	select {
	case pc.ready <- err:
	default:
	}
}

// open makes one session: the handshake GET, the CONNECT with the token,
// then the poll loop in a goroutine of its own until ctx ends. It returns
// once the CONNECT is answered.
func (pp *pollPool) open(ctx context.Context, token string) (*pollClient, error) {
	base := "http://" + pp.addr + "/socket.io/?EIO=4&transport=polling"
	pc := &pollClient{pool: pp, ready: make(chan error, 1)}
	body, err := pc.do(ctx, http.MethodGet, base, "")
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	var open struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil || open.SID == "" {
		return nil, fmt.Errorf("handshake: not an open packet: %.100q", body)
	}
	pc.url = base + "&sid=" + open.SID
	if _, err := pc.do(ctx, http.MethodPost, pc.url, fmt.Sprintf(`40{"token":%q}`, token)); err != nil {
		return nil, fmt.Errorf("CONNECT: %w", err)
	}
	pp.loops.Go(func() {
		pc.settle(pc.loop(ctx))
		pp.closed.Add(1)
	})
	select {
	case err := <-pc.ready:
		if err != nil {
			return nil, err
		}
	case <-time.After(10 * time.Second):
		return nil, errors.New("no answer to the CONNECT within 10s")
	}
	return pc, nil
}

// do sends one request of the session and returns the body of a 200.
func (pc *pollClient) do(ctx context.Context, method, url, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Origin", "http://"+pc.pool.addr)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := pc.pool.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMessage+1))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d %.100q", method, resp.StatusCode, b)
	}
	return string(b), nil
}

// loop polls until the session or ctx ends, and says why it ended.
func (pc *pollClient) loop(ctx context.Context) error {
	for ctx.Err() == nil {
		pc.pool.held.Add(1)
		body, err := pc.do(ctx, http.MethodGet, pc.url, "")
		pc.pool.held.Add(-1)
		now := time.Now().UnixNano()
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		for pkt := range strings.SplitSeq(body, "\x1e") {
			if err := pc.packet(ctx, []byte(pkt), now); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// packet handles one Engine.IO packet of a GET response; an error ends
// the session.
func (pc *pollClient) packet(ctx context.Context, p []byte, now int64) error {
	switch {
	case bytes.Equal(p, []byte("2")):
		if _, err := pc.do(ctx, http.MethodPost, pc.url, "3"); err != nil {
			return fmt.Errorf("pong: %w", err)
		}
		pc.pongs.Add(1)
	case bytes.Equal(p, []byte("1")):
		return errors.New("Engine.IO close packet")
	case bytes.HasPrefix(p, []byte("40")):
		pc.settle(nil)
	case bytes.HasPrefix(p, []byte("44")):
		return errors.New("CONNECT_ERROR " + string(p[2:min(len(p), 200)]))
	case bytes.HasPrefix(p, []byte("41")):
		return errors.New("the server disconnected the namespace")
	case bytes.HasPrefix(p, []byte("42")) && bytes.HasPrefix(p[2:], benchEvent):
		pc.pool.sink.record(p[2:], now)
	}
	return nil
}

// runPolling measures cfg.polling long-polling sessions on a server of
// sp's of their own.
func (g *gen) runPolling(sp spec) (*pollResult, error) {
	cfg := g.cfg
	cmd, why := cfg.serverCommand(sp, append([]string{"-contender=" + sp.server}, sp.args...))
	if why != "" {
		return nil, errors.New(why)
	}
	srv, err := startCommand(cmd, filepath.Join(cfg.outDir, "logs", sp.name+"-polling.log"))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	time.Sleep(500 * time.Millisecond)
	before, err := srv.stats(true)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * cfg.polling, IdleConnTimeout: 2 * time.Minute, DisableCompression: true}
	s := &sink{}
	pp := &pollPool{hc: &http.Client{Transport: tr}, addr: srv.addr, sink: s}
	defer func() {
		cancel()
		pp.loops.Wait()
		tr.CloseIdleConnections()
	}()
	n, took, err := g.openSessions(ctx, pp)
	if err != nil {
		return nil, err
	}
	res := &pollResult{Sessions: n, SetupRate: float64(n) / took.Seconds()}
	if err := waitConns([]*server{srv}, n, time.Minute); err != nil {
		return nil, err
	}
	if err := pp.waitHeld(int64(n), time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(cfg.settle)
	after, err := srv.stats(true)
	if err != nil {
		return nil, err
	}
	res.RSS = (float64(after.RSS) - float64(before.RSS)) / float64(n)
	res.RSSRaw = (float64(after.RSSRaw) - float64(before.RSSRaw)) / float64(n)
	res.Heap = (float64(after.HeapInuse) - float64(before.HeapInuse)) / float64(n)
	log.Printf("%s polling: %d sessions held, %.1f KiB RSS/session, %.1f KiB heap", sp.name, n, res.RSS/1024, res.Heap/1024)
	if _, err := g.windowed(srv, s, n, 3, 1, time.Time{}); err != nil {
		return nil, fmt.Errorf("warm-up broadcast: %w", err)
	}
	for _, w := range []int{1, 10} {
		f, err := g.measured(srv, s, n, cfg.pollBroadcasts, w)
		if err != nil {
			return nil, err
		}
		log.Printf("%s polling, %d in flight: %.0f deliveries/s, %.2f µs server CPU each, p99 %v, %d/%d delivered",
			sp.name, w, f.Rate, f.CPUPerDelivery, f.P99, f.Delivered, f.Expected)
		if w == 1 {
			res.One = f
		} else {
			res.Ten = f
		}
	}
	res.Closed = pp.closed.Load()
	return res, nil
}

// openSessions opens cfg.polling sessions, cfg.dialConc at a time.
func (g *gen) openSessions(ctx context.Context, pp *pollPool) (int, time.Duration, error) {
	var next, opened, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var dialers sync.WaitGroup
	start := time.Now()
	for range g.cfg.dialConc {
		dialers.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= g.cfg.polling {
					return
				}
				if _, err := pp.open(ctx, g.tokens[i%len(g.tokens)]); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				opened.Add(1)
			}
		})
	}
	dialers.Wait()
	took := time.Since(start)
	if f := failed.Load(); f > int64(g.cfg.polling/100) {
		return 0, took, fmt.Errorf("%d of %d polling sessions failed; first error: %v", f, g.cfg.polling, *firstErr.Load())
	}
	return int(opened.Load()), took, nil
}

// waitHeld waits until want GETs are held.
func (pp *pollPool) waitHeld(want int64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for pp.held.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d GETs held after %v", pp.held.Load(), want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// measured is windowed with the server's and the generator's CPU per
// delivery.
func (g *gen) measured(srv *server, s *sink, members, k, w int) (*fanout, error) {
	cpu0, err := srv.stats(false)
	if err != nil {
		return nil, err
	}
	gen0 := selfCPU()
	f, err := g.windowed(srv, s, members, k, w, time.Time{})
	if err != nil {
		return nil, err
	}
	gen1 := selfCPU()
	cpu1, err := srv.stats(false)
	if err != nil {
		return nil, err
	}
	if f.Delivered > 0 {
		f.CPUPerDelivery = float64(cpu1.CPUNanos-cpu0.CPUNanos) / 1e3 / float64(f.Delivered)
		f.GenCPUPerDelivery = float64(gen1-gen0) / 1e3 / float64(f.Delivered)
	}
	return f, nil
}
