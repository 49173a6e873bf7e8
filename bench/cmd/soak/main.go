// Command soak runs a wsgate server process under a long, steady, churning
// load and records whether it stays flat: 10,000 connections by default,
// for 30 minutes, with 1% of them reconnecting every second, a broadcast
// to all of them every 100 ms, and a slow consumer (a connection that
// stops reading) every minute. Every 10 s it samples the server's RSS, heap
// and goroutines; it counts unexpected disconnects (the server closing a
// connection that was reading) and missed broadcasts, and writes a CSV and
// a PNG plot. It is run on demand, not in CI:
//
//	cd bench && go run ./cmd/soak                          # 30 minutes
//	cd bench && go run ./cmd/soak -duration 5m -out soak   # writes soak.csv, soak.png
//
// The server is bench/cmd/server's wsgate contender (built by the command
// unless -server names a binary), a separate process on 127.0.0.1 stopped
// by its PID. The clients share one epoll loop, like the load generator's.
package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

type config struct {
	conns     int
	duration  time.Duration
	churn     float64 // fraction of the connections that reconnect every second
	broadcast time.Duration
	slowEvery time.Duration
	sample    time.Duration
	pad       int
	out       string
	server    string
}

// stats are the client side's counters.
type stats struct {
	received, missed, unexpected  atomic.Int64
	reconnects, reconnectFailures atomic.Int64
	broadcastErrors, slowStarted  atomic.Int64
	slowDropped                   atomic.Int64
	slowDropSeconds               atomic.Int64 // sum over dropped slow consumers
}

func main() {
	var cfg config
	flag.IntVar(&cfg.conns, "conns", 10_000, "connections held open")
	flag.DurationVar(&cfg.duration, "duration", 30*time.Minute, "how long to run")
	flag.Float64Var(&cfg.churn, "reconnect", 0.01, "fraction of the connections that close and reconnect every second")
	flag.DurationVar(&cfg.broadcast, "broadcast", 100*time.Millisecond, "interval between broadcasts to every connection")
	flag.DurationVar(&cfg.slowEvery, "slow", time.Minute, "interval between new slow consumers (a connection that stops reading)")
	flag.DurationVar(&cfg.sample, "sample", 10*time.Second, "interval between samples of the server")
	flag.IntVar(&cfg.pad, "pad", 64, "padding bytes in each broadcast")
	flag.StringVar(&cfg.out, "out", "results/soak", "output path without extension: writes .csv and .png")
	flag.StringVar(&cfg.server, "server", "", "server binary (bench/cmd/server); default: go build it")
	flag.Parse()
	if err := run(cfg); err != nil {
		log.Fatalf("soak: %v", err)
	}
}

func run(cfg config) error {
	if cfg.conns <= 0 || cfg.duration <= 0 || cfg.broadcast <= 0 || cfg.sample <= 0 || cfg.churn < 0 || cfg.churn > 1 {
		return errors.New("-conns, -duration, -broadcast and -sample must be positive, -reconnect within [0, 1]")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return err
	}
	srv, err := startServer(cfg.server, cfg.out+".server.log")
	if err != nil {
		return err
	}
	defer srv.stop()

	st := &stats{}
	p, err := newPoller(st)
	if err != nil {
		return err
	}
	defer p.close()
	tokenTTL := cfg.duration + time.Hour
	log.Printf("opening %d connections to %s", cfg.conns, srv.addr)
	conns, err := openAll(srv.addr, cfg.conns, tokenTTL, p)
	if err != nil {
		return err
	}
	log.Printf("%d connections open; soaking for %s", len(conns.all), cfg.duration)

	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { broadcastLoop(srv, cfg, st, stop) })
	wg.Go(func() { churnLoop(srv.addr, cfg, tokenTTL, conns, p, st, stop) })
	wg.Go(func() { slowLoop(srv.addr, cfg, tokenTTL, conns, p, st, stop) })
	samples, err := sampleLoop(srv, cfg, st, start)
	close(stop)
	wg.Wait()
	conns.closeAll()
	if err != nil {
		return err
	}
	if err := writeCSV(cfg.out+".csv", samples); err != nil {
		return err
	}
	if err := writePlot(cfg.out+".png", samples, title(cfg)); err != nil {
		return err
	}
	summarize(cfg, samples, st)
	return nil
}

// pool is the set of connections the soak holds.
type pool struct {
	mu  sync.Mutex // guards all
	all []*conn
}

func (c *pool) pick() (int, *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range 100 {
		i := rand.N(len(c.all))
		if x := c.all[i]; x.state.Load() == live && !x.gone.Load() {
			return i, x
		}
	}
	return -1, nil
}

func (c *pool) replace(i int, x *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all[i] = x
}

func (c *pool) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.all {
		x.state.Store(leaving)
		x.close()
	}
}

// openAll dials n connections from 32 goroutines.
func openAll(addr string, n int, ttl time.Duration, p *poller) (*pool, error) {
	c := &pool{all: make([]*conn, n)}
	var next atomic.Int64
	errc := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				x, err := dialUser(addr, "soak-"+strconv.Itoa(i), ttl, p)
				if err != nil {
					errc <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				c.all[i] = x
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		c.closeAll()
		return nil, err
	}
	return c, nil
}

func dialUser(addr, user string, ttl time.Duration, p *poller) (*conn, error) {
	tok, err := benchauth.Mint(user, ttl)
	if err != nil {
		return nil, err
	}
	return dial(addr, user, tok, p, 30*time.Second)
}

func broadcastLoop(srv *server, cfg config, st *stats, stop <-chan struct{}) {
	t := time.NewTicker(cfg.broadcast)
	defer t.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		url := fmt.Sprintf("http://%s/bench/broadcast?seq=%d&pad=%d", srv.addr, seq, cfg.pad)
		resp, err := srv.http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = errors.New(resp.Status)
			}
		}
		if err != nil {
			st.broadcastErrors.Add(1)
		}
	}
}

// churnLoop closes a share of the connections every second and dials them
// again, as the same users.
func churnLoop(addr string, cfg config, ttl time.Duration, c *pool, p *poller, st *stats, stop <-chan struct{}) {
	per := int(float64(cfg.conns)*cfg.churn + 0.5)
	if per == 0 {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for range per {
			i, x := c.pick()
			if x == nil {
				continue
			}
			p.forget(x)
			x.leave()
			wg.Go(func() {
				y, err := dialUser(addr, x.user, ttl, p)
				if err != nil {
					st.reconnectFailures.Add(1)
					return
				}
				st.reconnects.Add(1)
				c.replace(i, y)
			})
		}
		wg.Wait()
	}
}

// slowLoop turns a reading connection into a slow consumer every
// cfg.slowEvery, watches the server drop it, and then connects its user
// again so that the count of connections stays where it was.
func slowLoop(addr string, cfg config, ttl time.Duration, c *pool, p *poller, st *stats, stop <-chan struct{}) {
	if cfg.slowEvery <= 0 {
		return
	}
	t := time.NewTicker(cfg.slowEvery)
	defer t.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	type slowConn struct {
		i     int
		c     *conn
		since time.Time
	}
	var watching []slowConn
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if i, x := c.pick(); x != nil {
				p.pause(x)
				st.slowStarted.Add(1)
				watching = append(watching, slowConn{i, x, time.Now()})
			}
		case <-check.C:
			kept := watching[:0]
			for _, s := range watching {
				if s.c.serverClosed() {
					st.slowDropped.Add(1)
					st.slowDropSeconds.Add(int64(time.Since(s.since).Seconds()))
					s.c.close()
					if y, err := dialUser(addr, s.c.user, ttl, p); err == nil {
						c.replace(s.i, y)
					} else {
						st.reconnectFailures.Add(1)
					}
					continue
				}
				kept = append(kept, s)
			}
			watching = kept
		}
	}
}

// sample is one row of the CSV.
type sample struct {
	At                          time.Duration
	RSS, HeapInuse              uint64
	Goroutines, Conns           int
	Received, Missed            int64
	Unexpected, Reconnects      int64
	SlowStarted, SlowDropped    int64
	BroadcastErrors, DialErrors int64
}

func sampleLoop(srv *server, cfg config, st *stats, start time.Time) ([]sample, error) {
	var out []sample
	t := time.NewTicker(cfg.sample)
	defer t.Stop()
	take := func() error {
		s, err := srv.stats()
		if err != nil {
			return err
		}
		row := sample{
			At: time.Since(start), RSS: s.RSSRaw, HeapInuse: s.HeapInuse, Goroutines: s.Goroutines, Conns: s.Conns,
			Received: st.received.Load(), Missed: st.missed.Load(), Unexpected: st.unexpected.Load(),
			Reconnects: st.reconnects.Load(), SlowStarted: st.slowStarted.Load(), SlowDropped: st.slowDropped.Load(),
			BroadcastErrors: st.broadcastErrors.Load(), DialErrors: st.reconnectFailures.Load(),
		}
		out = append(out, row)
		log.Printf("%6s rss %6.1f MiB  heap %6.1f MiB  goroutines %6d  conns %6d  unexpected %d  missed %d  reconnects %d  slow %d/%d",
			row.At.Round(time.Second), mib(row.RSS), mib(row.HeapInuse), row.Goroutines, row.Conns,
			row.Unexpected, row.Missed, row.Reconnects, row.SlowDropped, row.SlowStarted)
		return nil
	}
	if err := take(); err != nil {
		return nil, err
	}
	end := time.After(cfg.duration)
	for {
		select {
		case <-t.C:
			if err := take(); err != nil {
				return out, err
			}
		case <-end:
			return out, take()
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func writeCSV(path string, samples []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"seconds", "rss_bytes", "heap_inuse_bytes", "goroutines", "conns", "received", "missed",
		"unexpected_disconnects", "reconnects", "slow_started", "slow_dropped", "broadcast_errors", "reconnect_errors"})
	for _, s := range samples {
		_ = w.Write([]string{
			strconv.FormatFloat(s.At.Seconds(), 'f', 1, 64), strconv.FormatUint(s.RSS, 10), strconv.FormatUint(s.HeapInuse, 10),
			strconv.Itoa(s.Goroutines), strconv.Itoa(s.Conns), strconv.FormatInt(s.Received, 10), strconv.FormatInt(s.Missed, 10),
			strconv.FormatInt(s.Unexpected, 10), strconv.FormatInt(s.Reconnects, 10), strconv.FormatInt(s.SlowStarted, 10),
			strconv.FormatInt(s.SlowDropped, 10), strconv.FormatInt(s.BroadcastErrors, 10), strconv.FormatInt(s.DialErrors, 10),
		})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func title(cfg config) string {
	return fmt.Sprintf("WSGATE SOAK: %d CONNS, %s, %.0f%%/S RECONNECT, BROADCAST EVERY %s, SLOW CONSUMER EVERY %s",
		cfg.conns, cfg.duration, cfg.churn*100, cfg.broadcast, cfg.slowEvery)
}

// summarize prints the figures BENCHMARKS.md reports: the first and last
// samples after the first minute, the extremes, and the counters.
func summarize(cfg config, samples []sample, st *stats) {
	steady := samples
	for len(steady) > 2 && steady[0].At < time.Minute {
		steady = steady[1:]
	}
	first, last := steady[0], steady[len(steady)-1]
	var maxRSS, maxHeap uint64
	var maxG int
	for _, s := range steady {
		maxRSS, maxHeap, maxG = max(maxRSS, s.RSS), max(maxHeap, s.HeapInuse), max(maxG, s.Goroutines)
	}
	dropped := st.slowDropped.Load()
	meanDrop := int64(0)
	if dropped > 0 {
		meanDrop = st.slowDropSeconds.Load() / dropped
	}
	summary := map[string]any{
		"conns": cfg.conns, "duration": cfg.duration.String(),
		"rss_mib_first": mib(first.RSS), "rss_mib_last": mib(last.RSS), "rss_mib_max": mib(maxRSS),
		"heap_mib_first": mib(first.HeapInuse), "heap_mib_last": mib(last.HeapInuse), "heap_mib_max": mib(maxHeap),
		"goroutines_first": first.Goroutines, "goroutines_last": last.Goroutines, "goroutines_max": maxG,
		"received": st.received.Load(), "missed": st.missed.Load(), "unexpected_disconnects": st.unexpected.Load(),
		"reconnects": st.reconnects.Load(), "reconnect_errors": st.reconnectFailures.Load(),
		"slow_consumers": st.slowStarted.Load(), "slow_dropped": dropped, "slow_drop_mean_seconds": meanDrop,
		"broadcast_errors": st.broadcastErrors.Load(),
	}
	b, _ := json.MarshalIndent(summary, "", "  ")
	fmt.Println(string(b))
}
