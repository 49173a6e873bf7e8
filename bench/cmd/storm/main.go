// Command storm measures a recovery storm: the clients of a node that shuts
// down reconnect at once to another node and recover what they missed.
//
// It starts a redis-server and two wsgate server processes (bench/cmd/server
// with -redis and -history: the bench room keeps its history), connects
// -clients Go clients (package client) to node A, then shuts A down
// gracefully (1012) while the load balancer it plays holds every reconnect
// back; node B publishes -missed broadcasts to the room meanwhile. Then the
// balancer lets the reconnects through, all at once, to B: each client
// rejoins the room with its position and recovers. The report gives the
// time until every client has recovered, the share that recovered, Redis's
// and node B's CPU during the storm, and the Redis commands of a publish
// with history.
//
//	go run ./cmd/storm                       # 10,000 clients, 50 missed each
//	go run ./cmd/storm -clients 2000 -missed 20
//
// Every process it starts is stopped by its PID.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/client"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

// room is the bench room in wsgate's naming (bench/cmd/server).
const room = "bench:bench"

type config struct {
	clients, missed, dialConc int
	serverBin, redisBin, out  string
	backoffMin                time.Duration
	timeout                   time.Duration
}

func main() {
	var cfg config
	flag.IntVar(&cfg.clients, "clients", 10000, "clients of node A (one process holds them all: at most 10000)")
	flag.IntVar(&cfg.missed, "missed", 50, "broadcasts published while the clients are away")
	flag.IntVar(&cfg.dialConc, "dial-concurrency", 64, "first connections in flight")
	flag.StringVar(&cfg.serverBin, "server", "", "bench/cmd/server binary built with -tags redis (default: built into a temporary directory)")
	flag.StringVar(&cfg.redisBin, "redis-server", "redis-server", "redis-server binary")
	flag.StringVar(&cfg.out, "out", "results/storm.md", "where the Markdown report goes")
	flag.DurationVar(&cfg.backoffMin, "backoff-min", 500*time.Millisecond, "the clients' Backoff.Min: after 1012 they reconnect within it")
	flag.DurationVar(&cfg.timeout, "timeout", 3*time.Minute, "bound of every wait")
	flag.Parse()
	if cfg.clients < 1 || cfg.clients > 10000 || cfg.missed < 1 || cfg.missed > 300 {
		log.Fatal("storm: -clients must be 1..10000 and -missed 1..300 (a recovery replays at most 300)")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stopAll()
		os.Exit(130)
	}()
	defer stopAll()
	rep, err := run(cfg)
	if err != nil {
		stopAll()
		log.Fatalf("storm: %v", err)
	}
	fmt.Print(rep)
	if err := os.MkdirAll("results", 0o755); err == nil {
		if err := os.WriteFile(cfg.out, []byte(rep), 0o644); err != nil {
			log.Print(err)
		}
	}
}

func run(cfg config) (string, error) {
	bin, cleanup, err := serverBinary(cfg.serverBin)
	if err != nil {
		return "", err
	}
	defer cleanup()
	rd, err := startRedis(cfg.redisBin)
	if err != nil {
		return "", err
	}
	a, err := startNode(bin, rd.addr, "a")
	if err != nil {
		return "", err
	}
	b, err := startNode(bin, rd.addr, "b")
	if err != nil {
		return "", err
	}
	lb := newBalancer(a.addr)
	clients, tally, err := connect(cfg, lb)
	if err != nil {
		return "", err
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	log.Printf("%d clients on node A", len(clients))
	pub := &publisher{}
	if err := pub.send(a, 5); err != nil {
		return "", err
	}
	if err := waitFor(cfg.timeout, "every client to receive the warm-up", func() bool { return tally.events.Load() >= int64(5*len(clients)) }); err != nil {
		return "", err
	}
	perPublish, err := takeDown(cfg, a, b, rd, lb, clients, pub)
	if err != nil {
		return "", err
	}
	return measureStorm(cfg, b, rd, lb, tally, len(clients), perPublish)
}

// publisher numbers the broadcasts of the run.
type publisher struct{ seq int }

func (p *publisher) send(n *node, k int) error {
	for range k {
		p.seq++
		if err := n.broadcast(p.seq); err != nil {
			return err
		}
	}
	return nil
}

// takeDown shuts node A down while the balancer holds the reconnects back
// for node B, which publishes cfg.missed broadcasts meanwhile, and returns
// the Redis commands of one of those publishes.
func takeDown(cfg config, a, b *node, rd *redisServer, lb *balancer, clients []*client.Client, pub *publisher) (map[string]float64, error) {
	lb.hold(b.addr)
	go func() { _ = a.shutdown() }()
	if err := waitFor(cfg.timeout, "every client to lose node A", func() bool {
		for _, c := range clients {
			if c.ConnID() != "" {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	before, err := rd.commandStats()
	if err != nil {
		return nil, err
	}
	if err := pub.send(b, cfg.missed); err != nil {
		return nil, err
	}
	after, err := rd.commandStats()
	if err != nil {
		return nil, err
	}
	return perCall(before, after, cfg.missed), nil
}

// measureStorm lets the reconnects through and measures until every
// client reported its recovery.
func measureStorm(cfg config, b *node, rd *redisServer, lb *balancer, tally *tally, n int, perPublish map[string]float64) (string, error) {
	redisCPU0, err := rd.cpu()
	if err != nil {
		return "", err
	}
	bCPU0, err := b.cpu()
	if err != nil {
		return "", err
	}
	stats0, err := rd.commandStats()
	if err != nil {
		return "", err
	}
	self0, overflows0 := selfCPU(), overflows()
	start := time.Now()
	tally.start(start)
	lb.open()
	err = waitFor(cfg.timeout, "every client to report its recovery", func() bool { return tally.reported.Load() >= int64(n) })
	took := time.Since(start)
	redisCPU1, _ := rd.cpu()
	bCPU1, _ := b.cpu()
	used := cpus{redis: redisCPU1 - redisCPU0, node: bCPU1 - bCPU0, clients: selfCPU() - self0}
	stats1, _ := rd.commandStats()
	if err != nil {
		log.Print(err)
	}
	return tally.report(cfg, n, took, perPublish, used, perCall(stats0, stats1, 1), overflows()-overflows0), nil
}

// connect dials cfg.clients clients through lb, cfg.dialConc at a time.
func connect(cfg config, lb *balancer) ([]*client.Client, *tally, error) {
	t := &tally{missed: cfg.missed}
	clients := make([]*client.Client, cfg.clients)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range cfg.dialConc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(clients) {
					return
				}
				tok, err := benchauth.Mint(fmt.Sprint("u", i), 2*time.Hour)
				if err == nil {
					clients[i], err = lb.dial(tok, cfg.backoffMin, t)
				}
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("client %d: %w", i, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range clients {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, nil, firstErr
	}
	return clients, t, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// tally counts what the clients report.
type tally struct {
	missed   int
	events   atomic.Int64
	reported atomic.Int64
	began    atomic.Int64 // unix nanos when the reconnects were let through

	mu        sync.Mutex      // guards the fields below
	connected []time.Duration // from the start of the storm to each new connection
	recovered int
	short     int // recovered, but with fewer missed events than published
	failed    []string
	times     []time.Duration // from the start of the storm to each report
}

func (t *tally) start(at time.Time) { t.began.Store(at.UnixNano()) }

func (t *tally) event(client.Event) { t.events.Add(1) }

func (t *tally) state(s client.State) {
	if s.Phase != client.Connected || t.began.Load() == 0 {
		return
	}
	d := time.Duration(time.Now().UnixNano() - t.began.Load())
	t.mu.Lock()
	t.connected = append(t.connected, d)
	t.mu.Unlock()
}

func (t *tally) recovery(r client.Recovery) {
	if r.Room != room || t.began.Load() == 0 {
		return
	}
	d := time.Duration(time.Now().UnixNano() - t.began.Load())
	t.mu.Lock()
	switch {
	case !r.Recovered:
		if len(t.failed) < 5 {
			t.failed = append(t.failed, fmt.Sprintf("%+v", r))
		}
	case r.Missed < t.missed:
		t.short++
		t.recovered++
	default:
		t.recovered++
	}
	t.times = append(t.times, d)
	t.mu.Unlock()
	t.reported.Add(1)
}

// cpus are the CPU times used during the storm.
type cpus struct{ redis, node, clients time.Duration }

func (t *tally) report(cfg config, n int, took time.Duration, perPublish map[string]float64, cpu cpus, storm map[string]float64, listenOverflows int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	slices.Sort(t.times)
	slices.Sort(t.connected)
	quantile := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(time.Millisecond)
	}
	q := func(p float64) time.Duration { return quantile(t.times, p) }
	var b strings.Builder
	fmt.Fprintf(&b, "## Recovery storm: %d clients, %d missed messages each\n\n", n, cfg.missed)
	fmt.Fprintf(&b, "Run %s. Two wsgate nodes and one Redis on this machine; the clients (package client, Backoff.Min %v) in one process. Node A shut down gracefully while the load balancer held the reconnects back and node B published %d broadcasts to the room; then every reconnect went through at once to B, which recovered each client from the room's history.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cfg.backoffMin, cfg.missed)
	b.WriteString("| figure | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| time until every client had recovered | %v |\n", took.Round(time.Millisecond))
	fmt.Fprintf(&b, "| recovery reported, p50 / p90 / p99 / max | %v / %v / %v / %v |\n", q(0.5), q(0.9), q(0.99), q(1))
	fmt.Fprintf(&b, "| connected to node B (the rooms rejoined), p50 / p90 / p99 / max | %v / %v / %v / %v |\n",
		quantile(t.connected, 0.5), quantile(t.connected, 0.9), quantile(t.connected, 0.99), quantile(t.connected, 1))
	fmt.Fprintf(&b, "| clients that recovered | %d of %d (%.1f%%) |\n", t.recovered, n, 100*float64(t.recovered)/float64(n))
	fmt.Fprintf(&b, "| ... with fewer than %d missed messages | %d |\n", cfg.missed, t.short)
	fmt.Fprintf(&b, "| Redis CPU during the storm | %v |\n", cpu.redis.Round(time.Millisecond))
	fmt.Fprintf(&b, "| node B CPU during the storm | %v |\n", cpu.node.Round(time.Millisecond))
	fmt.Fprintf(&b, "| the clients' process CPU during the storm | %v |\n", cpu.clients.Round(time.Millisecond))
	fmt.Fprintf(&b, "| SYNs the kernel dropped (listen queue full: TcpExtListenOverflows) | %d |\n", listenOverflows)
	fmt.Fprintf(&b, "| Redis commands during the storm | %s |\n", formatCalls(storm))
	fmt.Fprintf(&b, "| Redis commands per publish with history | %s |\n", formatCalls(perPublish))
	if len(t.failed) > 0 {
		fmt.Fprintf(&b, "\nNot recovered (first ones): %s\n", strings.Join(t.failed, "; "))
	}
	return b.String()
}

func formatCalls(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.4g", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// perCall is the calls of every command between two INFO commandstats,
// divided by n; the measurement's own INFO is left out.
func perCall(before, after map[string]int, n int) map[string]float64 {
	out := map[string]float64{}
	for cmd, calls := range after {
		if d := calls - before[cmd]; d > 0 && cmd != "info" && cmd != "ping" {
			out[cmd] = float64(d) / float64(n)
		}
	}
	return out
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// balancer plays the load balancer: every connection goes to the current
// node; while held, new connections wait until it opens.
type balancer struct {
	mu     sync.Mutex // guards addr and gate
	addr   string
	gate   chan struct{} // closed while connections go through
	client *httpClient
}

func newBalancer(addr string) *balancer {
	g := make(chan struct{})
	close(g)
	lb := &balancer{addr: addr, gate: g}
	lb.client = newHTTPClient(lb)
	return lb
}

// hold makes new connections wait, and sends them to addr once opened.
func (lb *balancer) hold(addr string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.addr, lb.gate = addr, make(chan struct{})
}

func (lb *balancer) open() {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	close(lb.gate)
}

// target waits until the balancer lets connections through.
func (lb *balancer) target(ctx context.Context) (string, error) {
	lb.mu.Lock()
	addr, gate := lb.addr, lb.gate
	lb.mu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.gate == gate {
		return lb.addr, nil
	}
	return addr, nil
}

func (lb *balancer) dial(tok string, backoffMin time.Duration, t *tally) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return client.Dial(ctx, client.Options{
		URL:         "ws://balancer/ws",
		Origin:      "http://127.0.0.1",
		Token:       func(context.Context) (string, error) { return tok, nil },
		HTTPClient:  lb.client.Client,
		DialTimeout: time.Minute, // a held reconnect waits at the balancer
		AckTimeout:  time.Minute,
		Backoff:     client.Backoff{Min: backoffMin, Max: 10 * time.Second},
		OnEvent:     t.event,
		OnState:     t.state,
		OnRecovery:  t.recovery,
	})
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// overflows reads the kernel's count of connections dropped for a full
// listen queue (/proc/net/netstat), or -1.
func overflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, name := range names {
			if name == "ListenOverflows" && j < len(values) {
				n, _ := strconv.ParseInt(values[j], 10, 64)
				return n
			}
		}
	}
	return -1
}
