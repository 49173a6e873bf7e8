// Package redistest runs real redis-server processes for tests: one server on
// a free loopback port, or a small Redis Cluster.
//
//	srv := redistest.Start(t)
//	b, err := redis.New(redis.Options{Addrs: []string{srv.Addr()}})
//
// Every server gets its own temporary directory, no persistence, and is
// stopped when the test ends. Processes are signalled by PID only, so tests
// never disturb a Redis they did not start. A missing redis-server binary
// fails the test: CI installs it, and a skipped broker test would hide a
// broken broker.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readyTimeout bounds how long a starting server may take to answer PING.
const readyTimeout = 15 * time.Second

// Option configures a server started by Start.
type Option func(*config)

type config struct {
	password string
	args     []string
}

// WithPassword makes the server require password (requirepass) from the
// default user.
func WithPassword(password string) Option {
	return func(c *config) { c.password = password }
}

// WithArgs appends redis-server command-line arguments, such as
// "--maxclients", "100".
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	cfg  config
	dir  string
	port int
	bin  string
	base []string // arguments that Restart reuses

	mu      sync.Mutex // guards cmd, exited and paused
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	paused  bool
	logPath string
}

// Start runs redis-server on a free 127.0.0.1 port and waits until it answers
// PING. The server is stopped by t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	return start(t, cfg, nil)
}

func start(t testing.TB, cfg config, extra []string) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	dir := t.TempDir()
	// A port found free may be taken before redis binds it; a few attempts
	// with fresh ports make that race harmless.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s := &Server{t: t, cfg: cfg, dir: dir, port: port, bin: bin,
			logPath: filepath.Join(dir, "redis.log")}
		s.base = []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--daemonize", "no",
			"--logfile", s.logPath,
		}
		if cfg.password != "" {
			s.base = append(s.base, "--requirepass", cfg.password)
		}
		s.base = append(s.base, extra...)
		s.base = append(s.base, cfg.args...)
		if lastErr = s.launch(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("redistest: %s not found on PATH; install it (Debian/Ubuntu: apt-get install redis-server redis-tools): %v", name, err)
	}
	return p
}

// freePort asks the kernel for an unused loopback port. 6379 is never
// returned: it belongs to the machine's shared Redis.
func freePort() (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 6379 {
			return port, nil
		}
	}
	return 0, errors.New("find free port: only 6379 offered")
}

// launch starts the process and waits for PING, or for its early exit.
func (s *Server) launch() error {
	cmd := exec.Command(s.bin, s.base...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at startup: %s", s.logTail())
		default:
		}
		reply, err := s.Do("PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("no PONG from %s within %s (last: %q, %v): %s",
				s.Addr(), readyTimeout, reply, err, s.logTail())
		}
		time.Sleep(10 * time.Millisecond) // poll interval; the deadline bounds it
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// Addr returns the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Kill sends SIGKILL to the server's PID and waits for it to exit: the
// abrupt outage that clients must survive.
func (s *Server) Kill() {
	s.t.Helper()
	s.kill()
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.paused = false
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Restart starts the server again on the same port and directory, after Kill
// or Stop, and waits until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	s.kill()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart %s: %v", s.Addr(), err)
	}
}

// Pause freezes the process with SIGSTOP: connections stay open but nothing
// is answered, like a hung server or a black-holed network.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP, true)
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT, false)
}

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Errorf("redistest: signal %v to pid %d: %v", sig, s.cmd.Process.Pid, err)
		return
	}
	s.paused = paused
}

// Stop ends the server with SIGTERM, then SIGKILL if it has not exited
// within five seconds. It is idempotent and registered with t.Cleanup.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited, paused := s.cmd, s.exited, s.paused
	s.cmd, s.paused = nil, false
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// Do sends one command over a new connection and returns a simple-string,
// integer or bulk-string reply as text; an error reply becomes an error.
// It is meant for setup and assertions, not for load.
func (s *Server) Do(args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	if s.cfg.password != "" {
		if _, err := roundTrip(conn, r, "AUTH", s.cfg.password); err != nil {
			return "", err
		}
	}
	return roundTrip(conn, r, args...)
}

func roundTrip(conn net.Conn, r *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(r)
}

// readReply reads one RESP2 reply; an array becomes its elements joined by
// newlines, which is all that test assertions need.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		elems := make([]string, 0, max(n, 0))
		for range n {
			e, err := readReply(r)
			if err != nil {
				return "", err
			}
			elems = append(elems, e)
		}
		return strings.Join(elems, "\n"), nil
	}
	return "", fmt.Errorf("unsupported reply %q", line)
}

// CommandCalls returns how many times cmd (lower case, e.g. "publish") was
// called, from the text of INFO commandstats; 0 if it never was.
func CommandCalls(info, cmd string) (int, error) {
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		end := strings.IndexByte(rest, ',')
		if end < 0 {
			return 0, fmt.Errorf("commandstats line %q", line)
		}
		return strconv.Atoi(rest[:end])
	}
	return 0, nil
}
