package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// server is the wsgate server process under soak.
type server struct {
	cmd  *exec.Cmd
	addr string
	http *http.Client
	done chan struct{} // closed when the process has been waited for
	tmp  string        // the build directory to remove, if any
}

// startServer runs bin (or bench/cmd/server, built into a temporary
// directory, when bin is empty) as the wsgate contender, logs its output to
// logPath and waits for its "ADDR host:port" line.
func startServer(bin, logPath string) (*server, error) {
	var tmp string
	if bin == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "wsgate-soak"); err != nil {
			return nil, err
		}
		bin = filepath.Join(tmp, "server")
		out, err := exec.Command("go", "build", "-o", bin, "./cmd/server").CombinedOutput()
		if err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("go build ./cmd/server (run soak from bench/): %v\n%s", err, out)
		}
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-contender", "wsgate")
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{}), http: &http.Client{Timeout: 30 * time.Second}, tmp: tmp}
	addrC := make(chan string, 1)
	go func() {
		defer logf.Close()
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR "); ok {
			addrC <- a
		} else {
			close(addrC)
		}
		_, _ = io.Copy(logf, br)
	}()
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	select {
	case a, ok := <-addrC:
		if ok {
			s.addr = a
			return s, nil
		}
	case <-time.After(30 * time.Second):
	}
	s.stop()
	return nil, fmt.Errorf("%s printed no address; see %s", bin, logPath)
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 10 s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}

// serverStats mirrors the server's /bench/stats answer.
type serverStats struct {
	Conns      int    `json:"conns"`
	RSSRaw     uint64 `json:"rss_raw"`
	HeapInuse  uint64 `json:"heap_inuse"`
	Goroutines int    `json:"goroutines"`
}

// stats samples the server without forcing a collection: the soak wants
// what the process holds as it runs.
func (s *server) stats() (serverStats, error) {
	var st serverStats
	resp, err := s.http.Get("http://" + s.addr + "/bench/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
