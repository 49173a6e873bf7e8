// Command server runs one contender of the comparison: a WebSocket endpoint
// at /ws (wsgate-socketio: /socket.io/) that does the benchmark's job (authenticate, put the connection in
// one room, broadcast on command, answer an echo request) plus a control
// API for the load generator:
//
//	GET /bench/stats[?gc=1]        RSS, heap, stacks, goroutines, CPU, bytes allocated, connections (JSON)
//	GET /bench/broadcast?seq=&ts=&pad=  one broadcast of {"bts":ts,"seq":seq,"pad":"..."} to the room
//	POST /bench/shutdown           wsgate only: a graceful shutdown (1012 to every client)
//	/debug/pprof/                  net/http/pprof
//
// It listens on 127.0.0.1 only, on a port the kernel picks unless -listen
// says otherwise, and prints "ADDR host:port" on stdout once it serves.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// contender is one server implementation of the benchmark's job.
type contender interface {
	// Handler serves the WebSocket endpoint.
	Handler() http.Handler
	// Broadcast sends payload to every member of the room.
	Broadcast(payload []byte) error
	// Conns is the number of established (authenticated, joined) connections.
	Conns() int
}

// mounted is a contender served somewhere else than /ws.
type mounted interface {
	// Pattern is the ServeMux pattern of Handler.
	Pattern() string
}

// Room is the single room every connection joins.
const Room = "bench"

func main() {
	name := flag.String("contender", "wsgate", "bare | bare-detached | naive | wsgate | wsgate-socketio | centrifuge | melody")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
	redisAddr := flag.String("redis", "", "wsgate only: Redis address for the adapter/redis broker (needs -tags redis)")
	history := flag.Bool("history", false, "wsgate and wsgate-socketio only: the bench room (and user rooms) keep history")
	recovery := flag.Bool("recovery", false, "wsgate-socketio only: Socket.IO connection state recovery, session records in memory")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil || (host != "127.0.0.1" && host != "localhost" && host != "::1") {
		log.Fatalf("server: -listen must be a loopback address, got %q", *listen)
	}
	if *history && *name != "wsgate" && *name != "wsgate-socketio" {
		log.Fatal("server: -history is only for the wsgate and wsgate-socketio contenders")
	}
	if *recovery && *name != "wsgate-socketio" {
		log.Fatal("server: -recovery is only for the wsgate-socketio contender")
	}
	c, err := newContender(*name, *redisAddr, *history, *recovery)
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	mux := http.NewServeMux()
	pattern := "/ws"
	if m, ok := c.(mounted); ok {
		pattern = m.Pattern()
	}
	mux.Handle(pattern, c.Handler())
	mux.HandleFunc("/bench/stats", statsHandler(c))
	mux.HandleFunc("/bench/broadcast", broadcastHandler(c))
	mux.HandleFunc("POST /bench/shutdown", shutdownHandler(c))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("ADDR %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(srv.Serve(ln))
}

func newContender(name, redisAddr string, history, recovery bool) (contender, error) {
	if redisAddr != "" && name != "wsgate" {
		return nil, fmt.Errorf("-redis is only for the wsgate contender")
	}
	switch name {
	case "bare":
		return newBare(), nil
	case "bare-detached":
		return newBareDetached(), nil
	case "naive":
		return newNaive(), nil
	case "wsgate":
		return newWsgate(redisAddr, history)
	case "wsgate-socketio":
		return newWsgateSocketIO(history, recovery)
	case "centrifuge":
		return newCentrifuge()
	case "melody":
		return newMelody(), nil
	}
	return nil, fmt.Errorf("unknown contender %q", name)
}

// Stats is what /bench/stats returns.
type Stats struct {
	Conns      int    `json:"conns"`
	RSS        uint64 `json:"rss"`     // VmRSS, after GC and scavenge when gc=1
	RSSRaw     uint64 `json:"rss_raw"` // VmRSS before any GC
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	CPUNanos   int64  `json:"cpu_ns"` // user + system CPU time of the process
	// TotalAlloc is the bytes allocated since the start, freed or not: the
	// garbage a flood makes shows here even when the live heap stays flat.
	TotalAlloc uint64 `json:"total_alloc"`
}

func statsHandler(c contender) http.HandlerFunc {
	var mu sync.Mutex // one measurement at a time: GC and scavenge are global
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var s Stats
		s.RSSRaw = vmRSS()
		if r.URL.Query().Get("gc") == "1" {
			// The cost of a connection is what stays: collect the handshake
			// garbage and give freed pages back, identically for everyone.
			runtime.GC()
			debug.FreeOSMemory()
		}
		s.RSS = vmRSS()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapInuse, s.HeapAlloc, s.StackInuse, s.Sys = ms.HeapInuse, ms.HeapAlloc, ms.StackInuse, ms.Sys
		s.TotalAlloc = ms.TotalAlloc
		s.Goroutines = runtime.NumGoroutine()
		s.Conns = c.Conns()
		s.CPUNanos = cpuNanos()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}
}

// vmRSS reads the resident set size from /proc/self/status.
func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func broadcastHandler(c contender) http.HandlerFunc {
	var (
		mu   sync.Mutex
		pads = map[int]string{}
	)
	padOf := func(n int) string {
		mu.Lock()
		defer mu.Unlock()
		p, ok := pads[n]
		if !ok {
			p = strings.Repeat("x", n)
			pads[n] = p
		}
		return p
	}
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		seq, err := strconv.ParseUint(q.Get("seq"), 10, 32)
		if err != nil {
			http.Error(w, "seq", http.StatusBadRequest)
			return
		}
		pad, _ := strconv.Atoi(q.Get("pad"))
		if pad < 0 || pad > 1<<16 {
			http.Error(w, "pad", http.StatusBadRequest)
			return
		}
		ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
		if err != nil || ts == 0 {
			ts = time.Now().UnixNano()
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, `{"bts":%d,"seq":%d,"pad":"%s"}`, ts, seq, padOf(pad))
		if err := c.Broadcast(b.Bytes()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// shutdownHandler shuts a contender that can down gracefully and answers
// once it has drained (or 30 s passed).
func shutdownHandler(c contender) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.(interface{ Shutdown(context.Context) error })
		if !ok {
			http.Error(w, "this contender has no graceful shutdown", http.StatusNotImplemented)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
