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

// stop ends the process started as cmd: SIGTERM, then SIGKILL after 5 s.
func stop(cmd *exec.Cmd) {
	procs.mu.Lock()
	delete(procs.list, cmd.Process.Pid)
	procs.mu.Unlock()
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

// stopAll stops whatever is still running, on an interrupt or a fatal error.
func stopAll() {
	procs.mu.Lock()
	var all []*exec.Cmd
	for _, c := range procs.list {
		all = append(all, c)
	}
	procs.mu.Unlock()
	for _, c := range all {
		stop(c)
	}
}

// server is one contender process.
type server struct {
	cmd  *exec.Cmd
	addr string
	http *http.Client
}

// startServer runs bin with args, logs its output to logPath and waits for
// its "ADDR host:port" line.
func startServer(bin string, args []string, logPath string) (*server, error) {
	return startCommand(exec.Command(bin, args...), logPath)
}

// startCommand runs cmd (a contender server not yet started), logs its
// output to logPath and waits for its "ADDR host:port" line.
func startCommand(cmd *exec.Cmd, logPath string) (*server, error) {
	bin, args := cmd.Path, cmd.Args[1:]
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	track(cmd)
	addrC := make(chan string, 1)
	go func() {
		defer logf.Close()
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR "); ok {
			addrC <- a
		} else {
			fmt.Fprintf(logf, "unexpected first line %q\n", line)
			close(addrC)
		}
		_, _ = io.Copy(logf, br)
	}()
	select {
	case a, ok := <-addrC:
		if !ok {
			stop(cmd)
			return nil, fmt.Errorf("%s %v did not start; see %s", bin, args, logPath)
		}
		return &server{cmd: cmd, addr: a, http: &http.Client{
			Timeout:   2 * time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 4},
		}}, nil
	case <-time.After(30 * time.Second):
		stop(cmd)
		return nil, fmt.Errorf("%s %v printed no address in 30s; see %s", bin, args, logPath)
	}
}

func (s *server) stop() { stop(s.cmd) }

// serverStats mirrors the server's /bench/stats answer.
type serverStats struct {
	Conns      int    `json:"conns"`
	RSS        uint64 `json:"rss"`
	RSSRaw     uint64 `json:"rss_raw"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	CPUNanos   int64  `json:"cpu_ns"`
	TotalAlloc uint64 `json:"total_alloc"`
}

func (a serverStats) add(b serverStats) serverStats {
	a.Conns += b.Conns
	a.RSS += b.RSS
	a.RSSRaw += b.RSSRaw
	a.HeapInuse += b.HeapInuse
	a.HeapAlloc += b.HeapAlloc
	a.StackInuse += b.StackInuse
	a.Sys += b.Sys
	a.Goroutines += b.Goroutines
	a.CPUNanos += b.CPUNanos
	a.TotalAlloc += b.TotalAlloc
	return a
}

func (s *server) get(path string) (*http.Response, error) {
	resp, err := s.http.Get("http://" + s.addr + path)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func (s *server) stats(gc bool) (serverStats, error) {
	path := "/bench/stats"
	if gc {
		path += "?gc=1"
	}
	resp, err := s.get(path)
	if err != nil {
		return serverStats{}, err
	}
	defer resp.Body.Close()
	var st serverStats
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func (s *server) broadcast(seq int64, ts int64, pad int) error {
	resp, err := s.get(fmt.Sprintf("/bench/broadcast?seq=%d&ts=%d&pad=%d", seq, ts, pad))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// saveProfile writes the server's pprof endpoint path to file.
func (s *server) saveProfile(path, file string) error {
	resp, err := s.get(path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startRedis runs a throwaway redis-server on a free loopback port, without
// persistence.
func startRedis(bin, logPath string) (cmd *exec.Cmd, addr string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd = exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	track(cmd)
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if redisPing(addr) == nil {
			return cmd, addr, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop(cmd)
	return nil, "", errors.New("redis-server did not answer PING within 10s")
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", line)
	}
	return nil
}
