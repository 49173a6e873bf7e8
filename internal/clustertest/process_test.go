package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/hub"
)

// helperEnv selects the helper-process mode of the test binary; the
// other settings of a child node travel in the environment too.
const (
	helperEnv   = "WSGATE_CLUSTERTEST_HELPER"
	envRedis    = "WSGATE_CLUSTERTEST_REDIS"    // Redis address
	envProbe    = "WSGATE_CLUSTERTEST_PROBE"    // broker ProbeInterval
	envLeaseTTL = "WSGATE_CLUSTERTEST_LEASE"    // when set: Redis limiter and presence with this TTL
	envPerUser  = "WSGATE_CLUSTERTEST_PER_USER" // the limiter's PerUser
	urlPrefix   = "NODE_URL "                   // the line a child prints once it listens
)

// TestHelperProcess is not a test: run as a child with helperEnv=node, it
// serves one hub until its stdin closes (the parent is done or died) or
// it is killed. Besides /ws it offers, on loopback only,
// POST /broadcast?room=&event=&n= to publish n broadcasts, and
// GET /presence?room= for the hub's presence.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "node" {
		return
	}
	if err := serveHelperNode(); err != nil {
		fmt.Fprintln(os.Stderr, "helper node:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveHelperNode() error {
	probe, err := time.ParseDuration(os.Getenv(envProbe))
	if err != nil {
		return fmt.Errorf("%s: %w", envProbe, err)
	}
	addrs := []string{os.Getenv(envRedis)}
	b, err := redis.New(redis.Options{Addrs: addrs, ProbeInterval: probe})
	if err != nil {
		return err
	}
	opts, err := newHubOptions(b)
	if err != nil {
		return err
	}
	if ttlEnv := os.Getenv(envLeaseTTL); ttlEnv != "" {
		ttl, err := time.ParseDuration(ttlEnv)
		if err != nil {
			return fmt.Errorf("%s: %w", envLeaseTTL, err)
		}
		perUser, _ := strconv.Atoi(os.Getenv(envPerUser))
		limiter, err := redis.NewLimiter(redis.LimiterOptions{Addrs: addrs, PerUser: perUser, LeaseTTL: ttl})
		if err != nil {
			return err
		}
		presence, err := redis.NewPresence(redis.PresenceOptions{Addrs: addrs, TTL: ttl})
		if err != nil {
			return err
		}
		// Closed on a clean exit only; a SIGKILL leaves the leases and
		// entries to expire, which is what the parent measures.
		defer limiter.Close()
		defer presence.Close()
		opts.Admit, opts.Presence = limiter.Admit, presence
	}
	if os.Getenv(envHistory) != "" {
		withHistory(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", h)
	mux.HandleFunc("POST /broadcast", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("n"))
		failed := 0
		for i := range n {
			if err := h.Broadcast(r.Context(), r.FormValue("room"), r.FormValue("event"), map[string]int{"i": i}); err != nil {
				failed++
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]int{"published": n - failed, "failed": failed})
	})
	mux.HandleFunc("GET /presence", func(w http.ResponseWriter, r *http.Request) {
		users, err := h.Presence(r.Context(), r.FormValue("room"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(users)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("%shttp://%s\n", urlPrefix, ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or exits
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Shutdown(ctx)
	return srv.Close()
}

// child is a node running in a child process.
type child struct {
	t      *testing.T
	url    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	exited chan struct{} // closed once the process has been waited for
	once   sync.Once
}

// startChild re-executes the test binary as a helper node with env and
// waits until it listens. It is stopped by t.Cleanup.
func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), helperEnv+"=node"), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, stdin: stdin, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		// Read stdout to the end before Wait, as os/exec requires.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), urlPrefix); ok {
				urls <- u
			}
		}
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.stop)
	select {
	case c.url = <-urls:
	case <-c.exited:
		t.Fatalf("helper node exited at startup: %s", c.stderr)
	case <-time.After(waitFor):
		t.Fatalf("helper node did not listen within %s: %s", waitFor, c.stderr)
	}
	return c
}

// stop closes the child's stdin, which makes it shut down cleanly, and
// kills it by PID if it has not exited within waitFor.
func (c *child) stop() {
	c.once.Do(func() { _ = c.stdin.Close() })
	select {
	case <-c.exited:
	case <-time.After(waitFor):
		c.kill()
	}
}

// kill sends SIGKILL to the child's PID and waits for it: the node dies
// without any cleanup.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// broadcast asks the child to publish n broadcasts of event to room.
func (c *child) broadcast(t *testing.T, room, event string, n int) {
	t.Helper()
	form := strings.NewReader(fmt.Sprintf("room=%s&event=%s&n=%d", room, event, n))
	resp, err := http.Post(c.url+"/broadcast", "application/x-www-form-urlencoded", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Published, Failed int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Failed != 0 || out.Published != n {
		t.Fatalf("broadcast: %+v %v", out, err)
	}
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil // enough to diagnose; bounded
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
