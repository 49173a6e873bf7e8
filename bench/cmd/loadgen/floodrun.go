package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

// floodConfig is the flood measurement's part of the command line.
type floodConfig struct {
	enabled  bool
	kinds    string
	time     time.Duration // one flooding connection floods at most this long
	frames   int64         // and sends at most this many frames
	grace    time.Duration // then waits this long for the server to end the connection
	polite   bool          // stop flooding at the server's close frame
	flooders int
	loadTime time.Duration
	requests int
	legit    int
}

func registerFloodFlags(fc *floodConfig) {
	flag.BoolVar(&fc.enabled, "floods", false, "run the flood measurement instead of the comparison (default contenders wsgate,naive,bare; report in <results>/floods.md)")
	flag.StringVar(&fc.kinds, "flood-kinds", "pings,pongs,empty-continuations,byte-continuations,junk", "floods to run, comma-separated")
	flag.DurationVar(&fc.time, "flood-time", 5*time.Second, "one flooding connection sends frames for at most this long")
	flag.Int64Var(&fc.frames, "flood-frames", 500_000_000, "one flooding connection sends at most this many frames")
	flag.DurationVar(&fc.grace, "flood-grace", 2*time.Second, "after its last frame, how long a flooding connection waits for the server to end it")
	flag.BoolVar(&fc.polite, "flood-stop-at-close", false, "flooders stop writing and close at the server's close frame (default: they flood on, as an attacker would, until the server ends the TCP connection)")
	flag.IntVar(&fc.flooders, "flooders", 4, "flooding connections during a latency phase, each reconnecting as soon as it is closed")
	flag.DurationVar(&fc.loadTime, "flood-load-time", 10*time.Second, "length of each latency phase")
	flag.IntVar(&fc.requests, "flood-requests", 2000, "legitimate requests per latency phase, one at a time, evenly spread over -flood-load-time")
	flag.IntVar(&fc.legit, "flood-legit-conns", 40, "connections the legitimate requests take turns on (2,000 in 10 s over 40 is 5/s each, under wsgate's default 10 events/s)")
}

// limits bounds one flooding connection that may flood until until.
func (fc floodConfig) limits(until time.Time) floodLimits {
	return floodLimits{frames: fc.frames, until: until, grace: fc.grace, stopAtClose: fc.polite}
}

// check refuses settings that would make the measurement unbounded or empty.
func (fc floodConfig) check() error {
	if fc.time <= 0 || fc.frames <= 0 || fc.grace <= 0 || fc.loadTime <= 0 {
		return fmt.Errorf("-flood-time, -flood-frames, -flood-grace and -flood-load-time must be positive")
	}
	if fc.flooders < 1 || fc.flooders > 64 || fc.requests < 1 || fc.legit < 1 || fc.legit > 1000 {
		return fmt.Errorf("-flooders must be 1..64, -flood-legit-conns 1..1000 and -flood-requests positive")
	}
	return nil
}

// selectKinds returns the floods named in list, in the order given.
func selectKinds(list string) ([]floodKind, error) {
	all := floodKinds()
	var out []floodKind
	for _, id := range strings.Split(list, ",") {
		found := false
		for _, k := range all {
			if k.id == strings.TrimSpace(id) {
				out, found = append(out, k), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown flood %q", id)
		}
	}
	return out, nil
}

// floodSingle is one flooding connection against an otherwise idle server.
type floodSingle struct {
	Kind          string
	Err           string
	Out           floodOutcome
	Released      time.Duration // first flood frame → the server no longer counts the connection
	CPU           time.Duration // server CPU from just before the flood until then
	Alloc         uint64        // bytes the server allocated meanwhile
	Before, After serverStats   // after a GC, with no connection open
	Peak          peaks
}

// floodLoad is one latency phase: the legitimate requests, with or without
// flooders.
type floodLoad struct {
	Kind        string // "" for the phase without a flood
	Err         string
	RTT         *latency
	Flood       flooderCounts
	ServerCores float64 // server CPU time / wall time
	GenCores    float64 // this generator's, flooders and legitimate client together
	Peak        peaks
	LegitLost   int64 // legitimate connections that ended during the phase
}

// floodRow is one contender's flood figures.
type floodRow struct {
	Name, Skipped, Err string
	Singles            []floodSingle
	Loads              []floodLoad
}

// runFloods is the flood measurement (loadgen -floods): every contender in
// turn, in a server process of its own stopped by its PID.
func runFloods(cfg config, fc floodConfig) {
	kinds, err := selectKinds(fc.kinds)
	if err == nil {
		err = fc.check()
	}
	if err != nil {
		log.Fatalf("loadgen: %v", err)
	}
	rep := floodReport{cfg: cfg, fc: fc, machine: machineInfo(), started: time.Now()}
	for _, name := range cfg.contenders {
		sp, ok := lookupSpec(name)
		if !ok {
			log.Fatalf("loadgen: unknown contender %q", name)
		}
		log.Printf("=== floods, %s", name)
		rep.rows = append(rep.rows, runFloodContender(cfg, fc, sp, kinds, &rep.loads))
	}
	rep.finished = time.Now()
	rep.loads.note()
	md := rep.markdown()
	fmt.Print(md)
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("report written to %s", cfg.out)
}

func runFloodContender(cfg config, fc floodConfig, sp spec, kinds []floodKind, lg *loadLog) (row floodRow) {
	row.Name = sp.name
	if sp.nodes != 1 {
		row.Skipped = "one server process only"
		return row
	}
	if dialects[sp.server].sio {
		row.Skipped = "the floods are WebSocket frames of the native protocols"
		return row
	}
	srv, err := startServer(cfg.serverBin, []string{"-contender=" + sp.server}, filepath.Join(cfg.outDir, "logs", "floods-"+sp.name+".log"))
	if err != nil {
		row.Err = err.Error()
		return row
	}
	defer srv.stop()
	d := dialects[sp.server]
	for i, k := range kinds {
		lg.note()
		s := singleFlood(srv, d, k, mustMint(fmt.Sprintf("flood-single-%d", i)), fc)
		log.Printf("%s, one connection of %s: %s", sp.name, k.name, s.summary())
		row.Singles = append(row.Singles, s)
	}
	if d.echo == nil {
		return row // nothing to measure latency with (bare)
	}
	row.Loads, row.Err = latencyPhases(srv, d, kinds, fc, lg)
	return row
}

func mustMint(sub string) string {
	t, err := benchauth.Mint(sub, 2*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	return t
}

func (s floodSingle) summary() string {
	if s.Err != "" {
		return "failed: " + s.Err
	}
	if !s.Out.closed {
		return fmt.Sprintf("not closed, %d frames in %v", s.Out.frames, s.Out.sent.Round(time.Millisecond))
	}
	return fmt.Sprintf("closed %d after %v and %d frames, TCP ended after %v (dropped %v), released after %v; %v server CPU, peak %d goroutines",
		s.Out.code, s.Out.took.Round(time.Microsecond), s.Out.frames, s.Out.gone.Round(time.Microsecond), s.Out.dropped,
		s.Released.Round(time.Millisecond), s.CPU.Round(time.Millisecond), s.Peak.goroutines)
}

// singleFlood floods srv from one connection and reports what it cost.
func singleFlood(srv *server, d *dialect, k floodKind, tok string, fc floodConfig) (r floodSingle) {
	r.Kind = k.name
	var err error
	fail := func(err error) floodSingle { r.Err = err.Error(); return r }
	if r.Before, err = srv.stats(true); err != nil {
		return fail(err)
	}
	conn, err := dialFlood(srv.addr, d, tok, 10*time.Second)
	if err != nil {
		return fail(err)
	}
	s0, err := srv.stats(false)
	if err != nil {
		conn.nc.Close()
		return fail(err)
	}
	smp := startSampler(srv, 10*time.Millisecond)
	r.Out = conn.flood(k, fc.limits(time.Now().Add(fc.time)), nil)
	// The server's cost includes whatever it does after the flood until
	// it has let go of the connection (a drain, a close handshake).
	err = waitConnsAtMost(srv, 0, 10*time.Second)
	r.Released = time.Since(conn.started)
	r.Peak = smp.finish()
	if err != nil {
		return fail(err)
	}
	s1, err := srv.stats(false)
	if err != nil {
		return fail(err)
	}
	r.Peak.add(s0)
	r.Peak.add(s1)
	r.CPU = time.Duration(s1.CPUNanos - s0.CPUNanos)
	r.Alloc = s1.TotalAlloc - s0.TotalAlloc
	if r.After, err = srv.stats(true); err != nil {
		return fail(err)
	}
	return r
}

// waitConnsAtMost waits until srv reports at most n connections.
func waitConnsAtMost(srv *server, n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		st, err := srv.stats(false)
		if err != nil {
			return err
		}
		if st.Conns <= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server still reports %d connections (want at most %d) after %v", st.Conns, n, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// peaks are the largest figures the server reported during a phase.
type peaks struct {
	heap       uint64 // HeapAlloc: live objects and garbage not yet collected
	goroutines int
	samples    int
}

func (p *peaks) add(st serverStats) {
	p.heap = max(p.heap, st.HeapAlloc)
	p.goroutines = max(p.goroutines, st.Goroutines)
	p.samples++
}

// sampler polls a server's stats until finish, keeping the peaks.
type sampler struct {
	stop, done chan struct{}
	p          peaks // owned by the sampling goroutine until done is closed
}

// maxSamples bounds a sampler that nobody finishes.
const maxSamples = 100_000

func startSampler(srv *server, every time.Duration) *sampler {
	// A client of its own with a short timeout: a flooded server may be slow
	// to answer, and finish must not wait for the generator's long one.
	own := &server{addr: srv.addr, http: &http.Client{Timeout: 5 * time.Second}}
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for range maxSamples {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if st, err := own.stats(false); err == nil {
				s.p.add(st)
			}
		}
	}()
	return s
}

func (s *sampler) finish() peaks {
	close(s.stop)
	<-s.done
	return s.p
}

// loadLog keeps the machine's 1-minute load average as seen at the start of
// each phase: other engineers share the two cores.
type loadLog struct {
	mu  sync.Mutex
	one []string
}

func (l *loadLog) note() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := strings.Fields(loadAvg()); len(f) > 0 {
		l.one = append(l.one, f[0])
	}
}

// flooderCounts adds up what the flooders of one phase did.
type flooderCounts struct {
	Conns, Closed, Frames, DialFailures int64
	Codes                               map[int]int64
}

type flooderStats struct {
	conns, closed, frames, dialFailures atomic.Int64
	mu                                  sync.Mutex
	codes                               map[int]int64 // guarded by mu
}

func (s *flooderStats) record(out floodOutcome) {
	s.frames.Add(out.frames)
	if !out.closed {
		return
	}
	s.closed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.codes == nil {
		s.codes = map[int]int64{}
	}
	s.codes[out.code]++
}

func (s *flooderStats) counts() flooderCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return flooderCounts{Conns: s.conns.Load(), Closed: s.closed.Load(), Frames: s.frames.Load(),
		DialFailures: s.dialFailures.Load(), Codes: s.codes}
}
