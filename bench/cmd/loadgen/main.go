// Command loadgen runs the comparison: for each contender it starts the
// server binary (bench/cmd/server) as a separate process on loopback, opens
// the connections, measures idle memory, fan-out and request round trips,
// stops the server by its PID, and finally prints one Markdown report with
// every figure as a ratio to the bare and naive servers of the same run.
//
// With -floods it runs the flood measurement instead (floodrun.go).
//
// Usage (bench/run.sh builds the binaries and passes these):
//
//	loadgen -server ./server -conns 10000 -out results/latest.md
//	loadgen -server ./server -floods        # report in results/floods.md
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

// spec is one row of the comparison.
type spec struct {
	name   string
	server string // -contender of the server binary
	args   []string
	nodes  int // server processes; more than one share a Redis
	redis  bool
	fanout bool // broadcasts and echo (bare only accepts and reads)
	// node: the server is bench/node/server.mjs run by Node.js, not a
	// -contender of the Go server binary.
	node bool
}

var specs = []spec{
	{name: "bare", server: "bare", nodes: 1},
	{name: "naive", server: "naive", nodes: 1, fanout: true},
	{name: "wsgate", server: "wsgate", nodes: 1, fanout: true},
	{name: "centrifuge", server: "centrifuge", nodes: 1, fanout: true},
	{name: "melody", server: "melody", nodes: 1, fanout: true},
	{name: "wsgate-redis", server: "wsgate", nodes: 2, redis: true, fanout: true},
	// Socket.IO clients (sio.go): Node's Socket.IO 4 server, and the
	// wsgate hub of the wsgate row served through the socketio package.
	{name: "socketio-node", server: "socketio-node", nodes: 1, fanout: true, node: true},
	{name: "wsgate-socketio", server: "wsgate-socketio", nodes: 1, fanout: true},
	// The bench room keeping history: every broadcast goes into the room's
	// stream and carries its position (compare with wsgate).
	{name: "wsgate-history", server: "wsgate", args: []string{"-history"}, nodes: 1, fanout: true},
	{name: "wsgate-redis-history", server: "wsgate", args: []string{"-history"}, nodes: 2, redis: true, fanout: true},
	// Socket.IO with the bench room's history, then with connection state
	// recovery on top (session records in memory): every event a socket is
	// sent carries its offset as an extra last argument (compare with
	// wsgate-socketio and wsgate-history).
	{name: "wsgate-socketio-history", server: "wsgate-socketio", args: []string{"-history"}, nodes: 1, fanout: true},
	{name: "wsgate-socketio-recovery", server: "wsgate-socketio", args: []string{"-history", "-recovery"}, nodes: 1, fanout: true},
	// Not in the default list: what a server saves by returning from the
	// HTTP handler after the upgrade (see BENCHMARKS.md).
	{name: "bare-detached", server: "bare-detached", nodes: 1},
}

type config struct {
	serverBin, redisBin, outDir, out string
	nodeBin, nodeDir                 string
	contenders                       []string
	conns, dialConc                  int
	settle                           time.Duration
	satBroadcasts, window            int
	stepTimeout                      time.Duration
	rates                            []float64
	rateDur                          time.Duration
	rttConns, rttPerConn             int
	rttInterval                      time.Duration
	pad                              int
	polling, pollBroadcasts          int
	profile                          map[string]bool
	profileDur                       time.Duration
	passes                           int
	command                          string
	revision                         string
}

func main() {
	var cfg config
	var contenders, rates, profile string
	flag.StringVar(&cfg.serverBin, "server", "./server", "contender server binary (bench/cmd/server)")
	flag.StringVar(&cfg.redisBin, "redis-server", "redis-server", "redis-server binary for wsgate-redis; the row is skipped if it is missing")
	flag.StringVar(&cfg.nodeBin, "node", "node", "Node.js binary for socketio-node; the row is skipped if it is missing")
	flag.StringVar(&cfg.nodeDir, "node-dir", "node", "directory of socketio-node's server.mjs and its node_modules (npm ci; run.sh does it)")
	flag.StringVar(&contenders, "contenders", "bare,naive,wsgate,centrifuge,melody,wsgate-redis", "rows to run, in order")
	flag.IntVar(&cfg.conns, "conns", 5000, "connections per contender (at most 10000: one generator process)")
	flag.IntVar(&cfg.dialConc, "dial-concurrency", 32, "handshakes in flight while connecting")
	flag.DurationVar(&cfg.settle, "settle", 3*time.Second, "wait after the last connection before measuring idle memory")
	flag.IntVar(&cfg.satBroadcasts, "sat-broadcasts", 60, "broadcasts in the saturation phase")
	flag.IntVar(&cfg.window, "window", 4, "saturation: broadcasts in flight (the next waits for the one `window` before it to reach everyone)")
	flag.DurationVar(&cfg.stepTimeout, "step-timeout", 5*time.Second, "how long to wait for one broadcast to reach everyone")
	flag.StringVar(&rates, "rates", "25000,100000", "fixed-rate phases: offered deliveries per second, comma-separated")
	flag.DurationVar(&cfg.rateDur, "rate-duration", 5*time.Second, "length of each fixed-rate phase")
	flag.IntVar(&cfg.rttConns, "rtt-conns", 100, "connections sending echo requests in the round-trip phase")
	flag.IntVar(&cfg.rttPerConn, "rtt-requests", 20, "echo requests per connection, one at a time")
	flag.DurationVar(&cfg.rttInterval, "rtt-interval", 200*time.Millisecond, "pause between a connection's requests (stays under wsgate's default 10/s event limit)")
	flag.IntVar(&cfg.polling, "polling", 1000, "Socket.IO contenders: long-polling sessions measured on a server of their own after the WebSocket phases (0: none)")
	flag.IntVar(&cfg.pollBroadcasts, "poll-broadcasts", 40, "broadcasts to every polling session, one in flight then ten in flight")
	flag.IntVar(&cfg.pad, "payload", 64, "padding bytes in each broadcast")
	flag.StringVar(&profile, "profile", "", "contenders to profile in the first pass, comma-separated: a heap profile at idle and a CPU profile during fan-out, saved in -results as <name>-idle.heap.pprof and <name>-fanout.cpu.pprof")
	flag.IntVar(&cfg.passes, "passes", 1, "run every contender this many times, rotating the order, and report the median of each figure")
	flag.DurationVar(&cfg.profileDur, "profile-duration", 10*time.Second, "length of the CPU profile")
	flag.StringVar(&cfg.outDir, "results", "results", "directory for logs, profiles and the report")
	flag.StringVar(&cfg.out, "out", "", "write the Markdown report here too (default <results>/latest.md)")
	flag.StringVar(&cfg.command, "command", "", "the command line to print in the report (run.sh sets it)")
	flag.StringVar(&cfg.revision, "revision", "", "the wsgate revision measured, for the report (run.sh sets it)")
	var fc floodConfig
	registerFloodFlags(&fc)
	flag.Parse()
	if fc.enabled {
		floodDefaults(&contenders, &cfg.out, cfg.outDir)
	}
	cfg.contenders = strings.Split(contenders, ",")
	cfg.profile = map[string]bool{}
	for _, p := range strings.Split(profile, ",") {
		if p != "" {
			cfg.profile[p] = true
		}
	}
	cfg.passes = max(cfg.passes, 1)
	for _, r := range strings.Split(rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || v <= 0 {
			log.Fatalf("loadgen: bad -rates entry %q", r)
		}
		cfg.rates = append(cfg.rates, v)
	}
	if cfg.polling < 0 || cfg.polling > 5000 || cfg.pollBroadcasts < 1 {
		log.Fatal("loadgen: -polling must be 0..5000 (two sockets each at times) and -poll-broadcasts at least 1")
	}
	if cfg.conns < 1 || cfg.conns > 10000 {
		log.Fatal("loadgen: -conns must be 1..10000 (file descriptors: one generator process holds every client)")
	}
	if cfg.out == "" {
		cfg.out = filepath.Join(cfg.outDir, "latest.md")
	}
	if cfg.command == "" {
		cfg.command = strings.Join(os.Args, " ")
	}
	if err := os.MkdirAll(filepath.Join(cfg.outDir, "logs"), 0o755); err != nil {
		log.Fatal(err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		log.Print("loadgen: interrupted; stopping the processes it started")
		stopAll()
		os.Exit(130)
	}()

	if fc.enabled {
		runFloods(cfg, fc)
		return
	}
	g := &gen{cfg: cfg, tokens: mintTokens(cfg.conns)}
	rep := report{cfg: cfg, machine: machineInfo(), started: time.Now()}
	for _, name := range cfg.contenders {
		if _, ok := lookupSpec(name); !ok {
			log.Fatalf("loadgen: unknown contender %q", name)
		}
	}
	runs := map[string][]result{}
	for pass := range cfg.passes {
		// Rotating the order spreads the drift of a shared machine's load
		// over every contender instead of always hitting the same one.
		n := len(cfg.contenders)
		for i := range n {
			name := cfg.contenders[(i+pass)%n]
			sp, _ := lookupSpec(name)
			log.Printf("=== pass %d/%d, %s: %d connections", pass+1, cfg.passes, name, cfg.conns)
			res := g.run(sp, pass == 0 && cfg.profile[name])
			if res.Err != "" {
				log.Printf("%s: %s", name, res.Err)
			}
			if dialects[sp.server].sio && cfg.polling > 0 && res.Err == "" && res.Skipped == "" {
				var err error
				if res.Polling, err = g.runPolling(sp); err != nil {
					res.PollingErr = err.Error()
					log.Printf("%s polling: %v", name, err)
				}
			}
			runs[name] = append(runs[name], res)
		}
	}
	for _, name := range cfg.contenders {
		rep.results = append(rep.results, median(runs[name]))
	}
	rep.finished = time.Now()
	rep.machine.loadEnd = loadAvg()
	md := rep.markdown()
	fmt.Print(md)
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("report written to %s", cfg.out)
}

// serverCommand is the command that runs sp's server, or why it cannot run
// here (the row is then reported as skipped).
func (cfg config) serverCommand(sp spec, args []string) (*exec.Cmd, string) {
	if !sp.node {
		return exec.Command(cfg.serverBin, args...), ""
	}
	bin, err := exec.LookPath(cfg.nodeBin)
	if err != nil {
		return nil, "node not found"
	}
	script := filepath.Join(cfg.nodeDir, "server.mjs")
	if _, err := os.Stat(filepath.Join(cfg.nodeDir, "node_modules", "socket.io")); err != nil {
		return nil, "socket.io not installed (npm ci in " + cfg.nodeDir + ")"
	}
	// --expose-gc lets /bench/stats?gc=1 collect before measuring, as the
	// Go servers do.
	cmd := exec.Command(bin, "--expose-gc", script)
	cmd.Env = append(os.Environ(), "BENCH_JWT_SECRET="+string(benchauth.Secret))
	return cmd, ""
}

// floodDefaults gives the flood measurement its own contenders and report
// file unless the command line chose them.
func floodDefaults(contenders, out *string, outDir string) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["contenders"] {
		*contenders = "wsgate,naive,bare"
	}
	if !set["out"] {
		*out = filepath.Join(outDir, "floods.md")
	}
}

func lookupSpec(name string) (spec, bool) {
	for _, s := range specs {
		if s.name == name {
			return s, true
		}
	}
	return spec{}, false
}

func mintTokens(n int) []string {
	toks := make([]string, n)
	for i := range toks {
		t, err := benchauth.Mint(fmt.Sprintf("u%d", i), 2*time.Hour)
		if err != nil {
			log.Fatal(err)
		}
		toks[i] = t
	}
	return toks
}

type gen struct {
	cfg     config
	tokens  []string
	nextSeq int64
}

// result is one contender's row.
type result struct {
	Name          string
	Nodes         int
	Node          bool // a Node.js server: no goroutines, stacks or pprof
	Conns         int
	Err           string
	Skipped       string
	SetupRate     float64 // connections per second, handshake + auth
	SetupFailures int
	RSS, RSSRaw   float64 // bytes per connection
	Heap, Stack   float64
	Goroutines    float64
	Sat           *fanout
	Fixed         []*fanout // one per offered rate
	RTT           *latency
	Disconnected  int64       // connections the server ended during the run
	Polling       *pollResult // Socket.IO contenders: long-polling sessions
	PollingErr    string
	Passes        int // passes this row is the median of
	FailedPasses  int
}

type fanout struct {
	Broadcasts         int
	Expected           int64
	Delivered          int64
	Seconds            float64
	Rate               float64 // deliveries per second
	Offered            float64 // fixed-rate phase only
	CPUPerDelivery     float64 // server CPU µs per delivery
	GenCPUPerDelivery  float64 // this generator's CPU µs per delivery
	P50, P95, P99, Max time.Duration
}

type latency struct {
	Samples, Timeouts  int
	P50, P95, P99, Max time.Duration
}

func (g *gen) run(sp spec, profiling bool) (res result) {
	cfg := g.cfg
	res = result{Name: sp.name, Nodes: sp.nodes, Node: sp.node}
	profiling = profiling && !sp.node // pprof is the Go servers'; Node has none
	fail := func(format string, a ...any) result {
		res.Err = fmt.Sprintf(format, a...)
		return res
	}
	var redisAddr string
	if sp.redis {
		bin, err := exec.LookPath(cfg.redisBin)
		if err != nil {
			res.Skipped = "redis-server not found"
			return res
		}
		cmd, addr, err := startRedis(bin, filepath.Join(cfg.outDir, "logs", sp.name+"-redis.log"))
		if err != nil {
			return fail("redis: %v", err)
		}
		defer stop(cmd)
		redisAddr = addr
	}
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for n := range sp.nodes {
		args := append([]string{"-contender=" + sp.server}, sp.args...)
		if redisAddr != "" {
			args = append(args, "-redis="+redisAddr)
		}
		logPath := filepath.Join(cfg.outDir, "logs", fmt.Sprintf("%s-%d.log", sp.name, n))
		cmd, why := cfg.serverCommand(sp, args)
		if why != "" {
			res.Skipped = why
			return res
		}
		s, err := startCommand(cmd, logPath)
		if err != nil {
			if sp.redis {
				res.Skipped = "server could not use adapter/redis (see " + logPath + ")"
				return res
			}
			return fail("start: %v", err)
		}
		servers = append(servers, s)
	}
	time.Sleep(500 * time.Millisecond)
	before, err := sumStats(servers, true)
	if err != nil {
		return fail("stats: %v", err)
	}

	// Connection setup: handshake + JWT verification (+ the server's first
	// message where the protocol has one), cfg.dialConc at a time.
	d := dialects[sp.server]
	s := &sink{}
	pl, err := newPoller()
	if err != nil {
		return fail("epoll: %v", err)
	}
	clients, failures, firstErr, setup := g.connect(servers, d, s, pl)
	defer func() {
		// The poller stops first so that it never reads a descriptor
		// number the kernel has already handed to another socket.
		pl.stop()
		for _, c := range clients {
			c.close()
		}
	}()
	res.Conns, res.SetupFailures = len(clients), failures
	res.SetupRate = float64(len(clients)) / setup.Seconds()
	log.Printf("%s: %d connected in %v (%.0f/s), %d failed", sp.name, len(clients), setup.Round(time.Millisecond), res.SetupRate, failures)
	if failures > cfg.conns/100 {
		return fail("%d of %d connections failed; first error: %v", failures, cfg.conns, firstErr)
	}
	if err := waitConns(servers, len(clients), 60*time.Second); err != nil {
		return fail("%v", err)
	}

	// Idle memory: what the server holds per connection once the handshake
	// garbage is collected, counted the same way for every contender.
	time.Sleep(cfg.settle)
	after, err := sumStats(servers, true)
	if err != nil {
		return fail("stats: %v", err)
	}
	n := float64(len(clients))
	res.RSS = (float64(after.RSS) - float64(before.RSS)) / n
	res.RSSRaw = (float64(after.RSSRaw) - float64(before.RSSRaw)) / n
	res.Heap = (float64(after.HeapInuse) - float64(before.HeapInuse)) / n
	res.Stack = (float64(after.StackInuse) - float64(before.StackInuse)) / n
	res.Goroutines = float64(after.Goroutines-before.Goroutines) / n
	log.Printf("%s: idle %.1f KiB RSS/conn, %.1f KiB heap, %.1f KiB stack, %.2f goroutines", sp.name, res.RSS/1024, res.Heap/1024, res.Stack/1024, res.Goroutines)
	if profiling {
		if err := servers[0].saveProfile("/debug/pprof/heap?gc=1", filepath.Join(cfg.outDir, sp.name+"-idle.heap.pprof")); err != nil {
			log.Printf("heap profile: %v", err)
		}
	}
	if !sp.fanout {
		return res
	}

	members := len(clients)
	if _, err := g.windowed(servers[0], s, members, 3, 1, time.Time{}); err != nil {
		return fail("warm-up broadcast: %v", err)
	}
	cpu0, _ := sumStats(servers, false)
	gen0 := selfCPU()
	sat, err := g.windowed(servers[0], s, members, cfg.satBroadcasts, cfg.window, time.Time{})
	if err != nil {
		return fail("saturation: %v", err)
	}
	gen1 := selfCPU()
	cpu1, _ := sumStats(servers, false)
	if sat.Delivered > 0 {
		sat.CPUPerDelivery = float64(cpu1.CPUNanos-cpu0.CPUNanos) / 1e3 / float64(sat.Delivered)
		sat.GenCPUPerDelivery = float64(gen1-gen0) / 1e3 / float64(sat.Delivered)
	}
	res.Sat = sat
	log.Printf("%s: saturation %.0f deliveries/s, %.2f µs server CPU each, p99 %v, %d/%d delivered, load %s", sp.name, sat.Rate, sat.CPUPerDelivery,
		sat.P99, sat.Delivered, sat.Expected, loadAvg())

	if profiling {
		file := filepath.Join(cfg.outDir, sp.name+"-fanout.cpu.pprof")
		var wg sync.WaitGroup
		wg.Go(func() {
			path := fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(cfg.profileDur.Seconds()))
			if err := servers[0].saveProfile(path, file); err != nil {
				log.Printf("cpu profile: %v", err)
			}
		})
		cpu0, _ := sumStats(servers, false)
		f, err := g.windowed(servers[0], s, members, 20000, cfg.window, time.Now().Add(cfg.profileDur+time.Second))
		wg.Wait()
		cpu1, _ := sumStats(servers, false)
		if err == nil && f.Delivered > 0 {
			log.Printf("%s: profiled fan-out: %d deliveries, %.0f/s, %.2f µs server CPU per delivery", sp.name, f.Delivered, f.Rate,
				float64(cpu1.CPUNanos-cpu0.CPUNanos)/1e3/float64(f.Delivered))
		}
	}

	for _, rate := range cfg.rates {
		f, err := g.openLoop(servers[0], s, members, rate)
		if err != nil {
			return fail("fixed rate: %v", err)
		}
		res.Fixed = append(res.Fixed, f)
		log.Printf("%s: at %.0f/s offered p50 %v p99 %v, %d/%d delivered", sp.name, f.Offered, f.P50, f.P99, f.Delivered, f.Expected)
	}

	if d.echo != nil {
		res.RTT = g.rtt(clients[:min(cfg.rttConns, len(clients))], d)
		log.Printf("%s: echo p50 %v p99 %v (%d samples, %d timeouts)", sp.name, res.RTT.P50, res.RTT.P99, res.RTT.Samples, res.RTT.Timeouts)
	}
	res.Disconnected = s.closed.Load()
	return res
}
