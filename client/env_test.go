package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/room"
)

var testSecret = []byte("test-secret-that-is-at-least-32-bytes-long!")

// Payloads of the test hub's events.
type Text struct {
	Text string `json:"text" validate:"required,max=100"`
}

type Shout struct {
	Room string `json:"room" validate:"required"`
	Text string `json:"text"`
}

// newHub returns a hub with a real JWT authenticator, a room policy that
// allows chat:* and refuses every other custom kind, and these events:
//
//	echo   Text → Text             the ack carries the input back
//	fail   Text → FORBIDDEN        a handler refusal
//	slow   Text → waits for ctx    the server's handler deadline
//	shout  Shout → broadcast "shouted" to the room, sender included
func newHub(t testing.TB, configure func(*hub.Options)) *hub.Hub {
	t.Helper()
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	allow := func(context.Context, auth.Identity, room.Name) (bool, error) { return true, nil }
	policy, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{"chat": allow}})
	if err != nil {
		t.Fatal(err)
	}
	opts := hub.Options{Authenticator: authn, Rooms: policy}
	if configure != nil {
		configure(&opts)
	}
	h, err := hub.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub.Handle(h, "echo", func(_ hub.Context, in Text) (Text, error) { return in, nil })
	hub.Handle(h, "fail", func(hub.Context, Text) (struct{}, error) {
		return struct{}{}, hub.Errorf(hub.CodeForbidden, "not yours")
	})
	hub.Handle(h, "slow", func(ctx hub.Context, _ Text) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	hub.Handle(h, "shout", func(ctx hub.Context, in Shout) (struct{}, error) {
		return struct{}{}, ctx.Hub().Broadcast(ctx, in.Room, "shouted", in)
	})
	t.Cleanup(func() { shutdown(h) })
	return h
}

func shutdown(h *hub.Hub) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Shutdown(ctx)
}

// server serves a handler on 127.0.0.1 and can be killed the hard way —
// listener and every connection, hijacked WebSockets included, closed with
// no close frame — and restarted on the same address, like a process that
// crashed and came back.
type server struct {
	t    testing.TB
	addr string

	mu      sync.Mutex // guards the fields below
	srv     *http.Server
	handler http.Handler
	conns   map[net.Conn]struct{}
	arrived []time.Time // handshake arrival times, while recording
	record  bool
}

func startServer(t testing.TB, h http.Handler) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, addr: ln.Addr().String(), conns: make(map[net.Conn]struct{})}
	s.serve(ln, h)
	t.Cleanup(s.kill)
	return s
}

func (s *server) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler: http.HandlerFunc(s.serveHTTP),
		ConnState: func(c net.Conn, st http.ConnState) {
			s.mu.Lock()
			defer s.mu.Unlock()
			switch st {
			case http.StateNew:
				s.conns[c] = struct{}{}
			case http.StateClosed:
				delete(s.conns, c)
			}
		},
	}
	s.mu.Lock()
	s.srv, s.handler = srv, h
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (s *server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.handler
	if s.record {
		s.arrived = append(s.arrived, time.Now())
	}
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// url is the WebSocket endpoint; origin the Origin the hub's default
// same-origin check accepts.
func (s *server) url() string    { return "ws://" + s.addr + "/ws" }
func (s *server) origin() string { return "http://" + s.addr }

// setHandler swaps what serves new requests, like a load balancer moving
// traffic to another node.
func (s *server) setHandler(h http.Handler) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

// dropConns closes every connection abruptly; the listener stays.
func (s *server) dropConns() {
	s.mu.Lock()
	conns := s.conns
	s.conns = make(map[net.Conn]struct{})
	s.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// kill stops listening and drops every connection.
func (s *server) kill() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	_ = srv.Close()
	s.dropConns()
}

// restart listens again on the same address with h.
func (s *server) restart(h http.Handler) {
	s.t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("relisten on %s: %v", s.addr, err)
	}
	s.serve(ln, h)
}

func (s *server) recordArrivals() {
	s.mu.Lock()
	s.record, s.arrived = true, nil
	s.mu.Unlock()
}

func (s *server) arrivals() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrived...)
}

// options are client options for user against s, token in the header.
func (s *server) options(t testing.TB, user string) client.Options {
	tok := token(t, user, time.Hour)
	return client.Options{
		URL:    s.url(),
		Origin: s.origin(),
		Token:  func(context.Context) (string, error) { return tok, nil },
	}
}

func token(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(ttl).Unix(),
	}).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expiredToken is validly signed but expired long ago.
func expiredToken(t testing.TB, sub string) string {
	return token(t, sub, -time.Hour)
}

func dial(t testing.TB, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recorder collects callbacks for assertions; the waits are bounded.
type recorder struct {
	mu      sync.Mutex
	states  []client.State
	events  []client.Event
	errs    []*client.ServerError
	changed chan struct{} // capacity 1: nudged on every callback
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

// attach routes opts' callbacks to r.
func (r *recorder) attach(opts *client.Options) {
	opts.OnState = func(st client.State) { r.add(func() { r.states = append(r.states, st) }) }
	opts.OnEvent = func(ev client.Event) { r.add(func() { r.events = append(r.events, ev) }) }
	opts.OnError = func(se *client.ServerError) { r.add(func() { r.errs = append(r.errs, se) }) }
}

func (r *recorder) add(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitFor waits up to 15 s for cond, evaluated under r's lock.
func (r *recorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; states %v", what, r.phases())
		}
	}
}

// waitPhase waits for the n-th (from 1) state of phase and returns it.
func (r *recorder) waitPhase(t testing.TB, phase client.Phase, n int) client.State {
	t.Helper()
	var st client.State
	r.waitFor(t, phase.String(), func() bool {
		seen := 0
		for _, s := range r.states {
			if s.Phase == phase {
				if seen++; seen == n {
					st = s
					return true
				}
			}
		}
		return false
	})
	return st
}

// waitEvent waits for an event named name and returns the first one.
func (r *recorder) waitEvent(t testing.TB, name string) client.Event {
	t.Helper()
	var ev client.Event
	r.waitFor(t, "event "+name, func() bool {
		for _, e := range r.events {
			if e.Name == name {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

func (r *recorder) phases() []client.Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []client.Phase
	for _, s := range r.states {
		ps = append(ps, s.Phase)
	}
	return ps
}

func (r *recorder) serverErrors() []*client.ServerError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*client.ServerError(nil), r.errs...)
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, what, cond)
}

// settleGoroutines waits for the goroutine count to come down to at most
// limit and returns the last count.
func settleGoroutines(limit int) int {
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}
