package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
	"github.com/wsgate/wsgate/internal/testutil"
)

// nodeDir is bench/node, seen from this package's directory.
const nodeDir = "../../node"

// nodeServer starts the socketio-node contender (bench/node/server.mjs) as
// the comparison does, with env added, and stops it by its PID at cleanup.
// It installs the pinned socket.io with npm ci when node_modules is
// missing, as run.sh does.
func nodeServer(t *testing.T, env ...string) *server {
	t.Helper()
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "socket.io")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = nodeDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", nodeDir, err, out)
		}
	}
	cfg := config{nodeBin: "node", nodeDir: nodeDir}
	cmd, why := cfg.serverCommand(spec{name: "socketio-node", server: "socketio-node", node: true}, nil)
	if why != "" {
		t.Fatalf("socketio-node cannot run: %s", why)
	}
	cmd.Env = append(cmd.Env, env...)
	srv, err := startCommand(cmd, filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return srv
}

// goServer starts a contender of bench/cmd/server with args, built for
// the test, with env added, and stops it by its PID at cleanup.
func goServer(contender string, args ...string) func(*testing.T, ...string) *server {
	return func(t *testing.T, env ...string) *server {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "server")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../server").CombinedOutput(); err != nil {
			t.Fatalf("go build ../server: %v\n%s", err, out)
		}
		cmd := exec.Command(bin, append([]string{"-contender=" + contender}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		srv, err := startCommand(cmd, filepath.Join(t.TempDir(), "server.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.stop)
		return srv
	}
}

// sioTargets are the servers the Socket.IO clients are tested against.
var sioTargets = []struct {
	name  string
	start func(*testing.T, ...string) *server
}{
	{"socketio-node", nodeServer},
	{"wsgate-socketio", goServer("wsgate-socketio")},
	{"wsgate-socketio-recovery", goServer("wsgate-socketio", "-history", "-recovery")},
}

// With connection state recovery every event ends with the offset, an
// extra string argument: the broadcast before it is counted all the same.
func TestSocketIOEventWithOffsetCounts(t *testing.T) {
	for name, packet := range map[string]string{
		"one_argument":        `42["bench",{"bts":1000,"seq":7,"pad":"xx"}]`,
		"offset_after_it":     `42["bench",{"bts":1000,"seq":7,"pad":"xx"},"g1a.0-5-abcd"]`,
		"offset_of_two_rooms": `42["bench",{"bts":1000,"seq":7,"pad":"xx"},"gz.0-5-abcd.1-q-ep_2"]`,
	} {
		t.Run(name, func(t *testing.T) {
			s := &sink{}
			ph := newPhase(7, 1, 1)
			s.phase.Store(ph)
			c := &client{sink: s}
			if !c.onSIO([]byte(packet), 3000) {
				t.Fatalf("the event ended the connection: %s", c.why)
			}
			if n, stray := ph.n.Load(), s.stray.Load(); n != 1 || stray != 0 {
				t.Fatalf("%d deliveries recorded, %d stray; want 1, 0", n, stray)
			}
		})
	}
}

func sioClient(t *testing.T, srv *server, s *sink, p *poller, user string) *client {
	t.Helper()
	tok, err := benchauth.Mint(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(srv.addr, sioDialect, tok, s, p, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

func testPoller(t *testing.T) *poller {
	t.Helper()
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

// The Socket.IO client of the load generator, against Node's Socket.IO 4
// server and wsgate's: what the socketio rows of the comparison rest on.
func TestSocketIOClient(t *testing.T) {
	for _, target := range sioTargets {
		t.Run(target.name, func(t *testing.T) { testSocketIOClient(t, target.start) })
	}
}

func testSocketIOClient(t *testing.T, start func(*testing.T, ...string) *server) {
	t.Run("connects_with_the_token_then_counts_every_broadcast_and_gets_its_echo_acked", func(t *testing.T) {
		srv := start(t)
		s, p := &sink{}, testPoller(t)
		var clients []*client
		for i := range 3 {
			clients = append(clients, sioClient(t, srv, s, p, "u"+string(rune('a'+i))))
		}
		if err := waitConns([]*server{srv}, len(clients), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		const broadcasts = 5
		ph := newPhase(100, broadcasts, len(clients))
		s.phase.Store(ph)
		for i := range broadcasts {
			if err := srv.broadcast(100+int64(i), time.Now().UnixNano(), 16); err != nil {
				t.Fatal(err)
			}
		}
		for i := range broadcasts {
			if !ph.wait(100+int64(i), 10*time.Second) {
				t.Fatalf("broadcast %d reached %d of %d clients", i, ph.counts[i].Load(), len(clients))
			}
		}
		if n, stray := ph.n.Load(), s.stray.Load(); n != broadcasts*int64(len(clients)) || stray != 0 {
			t.Fatalf("%d deliveries recorded, %d stray; want %d, 0", n, stray, broadcasts*len(clients))
		}
		// A double holds every integer up to 2^53 exactly: this one comes
		// back from JavaScript unchanged.
		const ets = 1_000_000_007
		if err := clients[1].write(opText, sioDialect.echo(7, ets)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-clients[1].echoC:
			if got != ets {
				t.Fatalf("echo answered with ets %d, want %d", got, ets)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no ack for the echo request")
		}
	})

	t.Run("answers_engine_io_pings_so_the_server_keeps_the_connection", func(t *testing.T) {
		// Without pongs the server would close the connection 200 ms after
		// its first ping, long before the third.
		srv := start(t, "BENCH_PING_INTERVAL_MS=100", "BENCH_PING_TIMEOUT_MS=100")
		c := sioClient(t, srv, &sink{}, testPoller(t), "pinged")
		testutil.Eventually(t, 10*time.Second, "three pings answered or the connection closed", func() bool {
			return c.pongs.Load() >= 3 || c.gone.Load()
		})
		if c.gone.Load() {
			t.Fatalf("the server closed the connection after %d pongs", c.pongs.Load())
		}
		st, err := srv.stats(false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Conns != 1 {
			t.Fatalf("the server counts %d connections, want 1", st.Conns)
		}
	})

	t.Run("a_token_of_another_secret_is_a_connect_error", func(t *testing.T) {
		srv := start(t)
		forged := strings.Split(mustMint("forger"), ".")
		forged[2] = strings.Repeat("A", len(forged[2])) // a signature that does not verify
		_, err := dial(srv.addr, sioDialect, strings.Join(forged, "."), &sink{}, testPoller(t), 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "CONNECT_ERROR") {
			t.Fatalf("dial with a forged token: %v; want a CONNECT_ERROR", err)
		}
	})
}

// The long-polling client of the -polling measurement, against Node's
// Socket.IO 4 server and wsgate's.
func TestPollingClient(t *testing.T) {
	for _, target := range sioTargets {
		t.Run(target.name, func(t *testing.T) { testPollingClient(t, target.start) })
	}
}

func testPollingClient(t *testing.T, start func(*testing.T, ...string) *server) {
	open := func(t *testing.T, srv *server, n int, s *sink) ([]*pollClient, *pollPool) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		tr := &http.Transport{MaxIdleConnsPerHost: 2 * n}
		pp := &pollPool{hc: &http.Client{Transport: tr}, addr: srv.addr, sink: s}
		t.Cleanup(func() {
			cancel()
			pp.loops.Wait()
			tr.CloseIdleConnections()
		})
		var pcs []*pollClient
		for i := range n {
			pc, err := pp.open(ctx, mustMint(fmt.Sprintf("poller-%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			pcs = append(pcs, pc)
		}
		if err := pp.waitHeld(int64(n), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		return pcs, pp
	}

	t.Run("every_session_gets_every_broadcast_one_or_ten_in_flight", func(t *testing.T) {
		srv := start(t)
		s := &sink{}
		const sessions = 4
		open(t, srv, sessions, s)
		if err := waitConns([]*server{srv}, sessions, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		g := &gen{cfg: config{stepTimeout: 10 * time.Second}}
		for _, w := range []int{1, 10} {
			f, err := g.measured(srv, s, sessions, 20, w)
			if err != nil {
				t.Fatal(err)
			}
			if f.Delivered != f.Expected || f.Expected != 20*sessions {
				t.Fatalf("%d in flight: %d of %d delivered", w, f.Delivered, f.Expected)
			}
			if f.CPUPerDelivery <= 0 {
				t.Fatalf("%d in flight: server CPU per delivery %v", w, f.CPUPerDelivery)
			}
		}
		if st := s.stray.Load(); st != 0 {
			t.Fatalf("%d deliveries outside a phase", st)
		}
	})

	t.Run("answers_pings_so_the_session_lives_on", func(t *testing.T) {
		srv := start(t, "BENCH_PING_INTERVAL_MS=100", "BENCH_PING_TIMEOUT_MS=200")
		pcs, pp := open(t, srv, 1, &sink{})
		testutil.Eventually(t, 10*time.Second, "three pings answered or the session ended", func() bool {
			return pcs[0].pongs.Load() >= 3 || pp.closed.Load() > 0
		})
		if pp.closed.Load() > 0 {
			t.Fatalf("the session ended after %d pongs", pcs[0].pongs.Load())
		}
	})

	t.Run("a_forged_token_is_a_connect_error", func(t *testing.T) {
		srv := start(t)
		ctx, cancel := context.WithCancel(context.Background())
		pp := &pollPool{hc: &http.Client{}, addr: srv.addr, sink: &sink{}}
		defer pp.loops.Wait()
		defer cancel()
		_, err := pp.open(ctx, mustMint("forger")+"x")
		if err == nil || !strings.Contains(err.Error(), "CONNECT_ERROR") {
			t.Fatalf("open with a forged token: %v; want CONNECT_ERROR", err)
		}
	})
}
