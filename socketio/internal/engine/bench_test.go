package engine

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// The long-polling benchmark runs its server in a child process (this
// test binary, re-executed with benchServerEnv set), so that the server's
// memory and CPU are measured apart from the clients'.
const benchServerEnv = "ENGINE_BENCH_SERVER"

var benchSessions = flag.Int("engine.sessions", 1000, "long-polling sessions of BenchmarkPolling")

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		os.Exit(benchServer())
	}
	os.Exit(m.Run())
}

type benchStats struct {
	RSS        int64   `json:"rss"`
	Heap       int64   `json:"heap"`
	Goroutines int     `json:"goroutines"`
	CPU        float64 `json:"cpu"` // user+system seconds
	Sessions   int     `json:"sessions"`
	Held       int     `json:"held"`
}

type nopReceiver struct{}

func (nopReceiver) Message(eio.Packet) {}
func (nopReceiver) Closed(CloseInfo)   {}

// benchServer serves /engine.io/, /bench/stats[?gc=1] and /bench/send?n=K
// (K messages to every session) until its stdin closes.
func benchServer() int {
	srv, err := New(Options{MaxSessions: 1 << 20, Open: func(*Session, *http.Request) (Receiver, error) {
		return nopReceiver{}, nil
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var round atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	mux.HandleFunc("/bench/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("gc") {
			runtime.GC()
			debug.FreeOSMemory()
		}
		_ = json.NewEncoder(w).Encode(serverStats(srv))
	})
	mux.HandleFunc("/bench/send", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		frames := make([]wire.Frame, n)
		for i := range frames {
			frames[i] = wire.Frame{Op: wire.OpText, Payload: []byte("4" + strconv.FormatInt(round.Add(1), 10))}
		}
		for _, s := range srv.snapshot() {
			for _, f := range frames {
				_ = s.Send(f)
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	_ = (&http.Server{Handler: mux}).Serve(ln)
	return 0
}

func serverStats(srv *Server) benchStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	st := benchStats{
		RSS: vmRSS(), Heap: int64(ms.HeapInuse), Goroutines: runtime.NumGoroutine(),
		CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
	}
	for _, s := range srv.snapshot() {
		st.Sessions++
		s.mu.Lock()
		if s.get != nil {
			st.Held++
		}
		s.mu.Unlock()
	}
	return st
}

// vmRSS reads the resident set size from /proc/self/status, in bytes.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkPolling measures 1,000 long-polling sessions (-engine.sessions),
// each client holding a GET as engine.io-client does: the server's memory
// per session once they are all waiting (RSS and heap after GC, beyond the
// server's own before the first session), and its CPU per delivered
// message, with one message per session per round (each message a GET
// response and a new GET) and with ten (queued and delivered together).
func BenchmarkPolling(b *testing.B) {
	bs := startBenchServer(b)
	base := bs.stats(true)
	clients := bs.open(*benchSessions)
	idle := bs.stats(true)
	n := float64(*benchSessions)
	rss := float64(idle.RSS-base.RSS) / n / 1024
	heap := float64(idle.Heap-base.Heap) / n / 1024
	b.Logf("%d sessions held: server RSS %.1f KiB/session, heap %.1f KiB/session, %d goroutines",
		*benchSessions, rss, heap, idle.Goroutines)
	for _, perRound := range []int{1, 10} {
		b.Run(fmt.Sprintf("%d_per_round", perRound), func(b *testing.B) {
			cpu0 := bs.stats(false).CPU
			before := clients.delivered.Load()
			b.ResetTimer()
			for range b.N {
				target := clients.delivered.Load() + int64(*benchSessions*perRound)
				bs.get(fmt.Sprintf("/bench/send?n=%d", perRound))
				clients.await(b, target)
			}
			b.StopTimer()
			delivered := float64(clients.delivered.Load() - before)
			b.ReportMetric((bs.stats(false).CPU-cpu0)/delivered*1e6, "server-µs/msg")
			b.ReportMetric(rss, "RSS-KiB/session")
			b.ReportMetric(heap, "heap-KiB/session")
		})
	}
	clients.stop()
}

type benchServerProc struct {
	b      *testing.B
	base   string
	client *http.Client
}

// startBenchServer starts the server process; cleanup stops it by PID.
func startBenchServer(b *testing.B) *benchServerProc {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * *benchSessions, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchServerProc{b: b, base: "http://" + strings.TrimSpace(addr), client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

func (p *benchServerProc) get(path string) string {
	resp, err := p.client.Get(p.base + path)
	if err != nil {
		p.b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func (p *benchServerProc) stats(gc bool) benchStats {
	path := "/bench/stats"
	if gc {
		path += "?gc=1"
	}
	var st benchStats
	if err := json.Unmarshal([]byte(p.get(path)), &st); err != nil {
		p.b.Fatal(err)
	}
	return st
}

// benchClients are the polling clients, one goroutine each.
type benchClients struct {
	delivered atomic.Int64
	done      chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	cond      *sync.Cond
}

// open makes n sessions and starts their poll loops, and returns once
// every session has a GET held.
func (p *benchServerProc) open(n int) *benchClients {
	c := &benchClients{done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	for range n {
		body := p.get("/engine.io/?EIO=4&transport=polling")
		h, err := eio.ParseOpen([]byte(strings.TrimPrefix(body, "0")))
		if err != nil {
			p.b.Fatal(err)
		}
		c.wg.Go(func() { c.poll(p, h.SID) })
	}
	// The server is another process: its count is polled.
	testutil.Eventually(p.b, time.Minute, "every session's GET held", func() bool { return p.stats(false).Held == n })
	return c
}

// poll is one client's loop: GET, count the messages, answer pings.
func (c *benchClients) poll(p *benchServerProc, sid string) {
	url := p.base + "/engine.io/?EIO=4&transport=polling&sid=" + sid
	for {
		select {
		case <-c.done:
			return
		default:
		}
		resp, err := p.client.Get(url)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		for pkt := range strings.SplitSeq(string(body), "\x1e") {
			switch {
			case strings.HasPrefix(pkt, "4"):
				c.delivered.Add(1)
			case pkt == "2":
				if r, err := p.client.Post(url, "text/plain", strings.NewReader("3")); err == nil {
					r.Body.Close()
				}
			}
		}
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// await waits until target messages were delivered, for at most a minute.
func (c *benchClients) await(b *testing.B, target int64) {
	deadline := time.Now().Add(time.Minute)
	timer := time.AfterFunc(time.Minute, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.delivered.Load() < target {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages delivered within a minute", c.delivered.Load(), target)
		}
		c.cond.Wait()
	}
}

func (c *benchClients) stop() { close(c.done) }
