package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs are the processes this run started; each is stopped by its PID.
var procs struct {
	mu   sync.Mutex
	list map[int]*exec.Cmd
}

func track(cmd *exec.Cmd) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.list == nil {
		procs.list = map[int]*exec.Cmd{}
	}
	procs.list[cmd.Process.Pid] = cmd
}

// stopAll ends every process still running: SIGTERM, then SIGKILL after 5 s.
func stopAll() {
	procs.mu.Lock()
	all := procs.list
	procs.list = nil
	procs.mu.Unlock()
	for _, cmd := range all {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
}

// serverBinary returns bin, or bench/cmd/server built with the redis tag
// into a temporary directory that cleanup removes.
func serverBinary(bin string) (string, func(), error) {
	if bin != "" {
		return bin, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "wsgate-storm")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(tmp, "server")
	if out, err := exec.Command("go", "build", "-tags", "redis", "-o", bin, "./cmd/server").CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("go build -tags redis ./cmd/server (run storm from bench/): %v\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(tmp) }, nil
}

// node is one wsgate server process.
type node struct {
	addr string
	http *http.Client
}

func startNode(bin, redisAddr, name string) (*node, error) {
	cmd := exec.Command(bin, "-contender=wsgate", "-redis="+redisAddr, "-history")
	logf, err := os.CreateTemp("", "wsgate-storm-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	track(cmd)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return &node{addr: a, http: &http.Client{Timeout: time.Minute}}, nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("node %s did not start (log %s)", name, logf.Name())
	}
}

func (n *node) broadcast(seq int) error {
	resp, err := n.http.Get(fmt.Sprintf("http://%s/bench/broadcast?seq=%d&pad=64", n.addr, seq))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("broadcast: %s %s", resp.Status, b)
	}
	return nil
}

func (n *node) shutdown() error {
	resp, err := n.http.Post("http://"+n.addr+"/bench/shutdown", "", nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// cpu is the node's user + system CPU time so far.
func (n *node) cpu() (time.Duration, error) {
	resp, err := n.http.Get("http://" + n.addr + "/bench/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var s struct {
		CPU int64 `json:"cpu_ns"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return 0, err
	}
	return time.Duration(s.CPU), nil
}

// redisServer is the redis-server process, spoken to in RESP directly.
type redisServer struct{ addr string }

func startRedis(bin string) (*redisServer, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "wsgate-storm-redis")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--maxclients", "20000")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	track(cmd)
	r := &redisServer{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := r.do("PING"); err == nil {
			return r, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("redis-server did not answer PING")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends one command and returns its reply as text (a bulk or simple
// string, or an integer).
func (r *redisServer) do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"), strings.HasPrefix(line, ":"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("reply %q", line)
}

// commandStats returns the calls of every command.
func (r *redisServer) commandStats() (map[string]int, error) {
	info, err := r.do("INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, _ := strconv.Atoi(calls)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out, nil
}

// cpu is the server's user + system CPU time so far.
func (r *redisServer) cpu() (time.Duration, error) {
	info, err := r.do("INFO", "cpu")
	if err != nil {
		return 0, err
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second)), nil
}

// httpClient dials the balancer's current node whatever the URL's host.
type httpClient struct{ *http.Client }

func newHTTPClient(lb *balancer) *httpClient {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &httpClient{&http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addr, err := lb.target(ctx)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: -1,
	}}}
}
