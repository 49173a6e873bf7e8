package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/socketio"
)

// wsgateSocketIO is the hub of the wsgate contender (the same options,
// AutoRooms and "echo" handler) served to Socket.IO clients through the
// socketio package, mounted where socket.io-client looks: /socket.io/.
// Broadcasts are hub.Broadcast, as for native clients; the event is named
// "bench", as the socketio-node contender's.
//
// With -history the bench room keeps history, as the wsgate contender's
// does; with -recovery Socket.IO's connection state recovery is on, its
// session records in memory: every CONNECT saves a record, and every event
// a socket is sent becomes a copy of its own with the socket's offset as
// its last argument.
type wsgateSocketIO struct {
	h   *hub.Hub
	srv *socketio.Server
}

// sioMaxSessions leaves room above the 10,000 connections of a full run
// (socketio's default MaxSessions is exactly 10,000) for handshakes in
// flight and sessions still closing from a previous phase.
const sioMaxSessions = 20_000

func newWsgateSocketIO(history, recovery bool) (*wsgateSocketIO, error) {
	w, err := newWsgate("", history)
	if err != nil {
		return nil, err
	}
	opts := socketio.Options{
		Namespaces:  map[string]*hub.Hub{"/": w.h},
		MaxSessions: sioMaxSessions,
	}
	if recovery {
		// Socket.IO's defaults (2 minutes to resume); the store's bound of
		// 100,000 records holds every connection of a run and the
		// tombstones of those that ended.
		opts.Recovery = &socketio.Recovery{Store: memory.NewSessions(memory.SessionsOptions{})}
	}
	// The load generator's tests shorten the heartbeat, as they do for
	// socketio-node, to see pings answered without waiting 25 s.
	if opts.PingInterval, err = envMillis("BENCH_PING_INTERVAL_MS"); err != nil {
		return nil, err
	}
	if opts.PingTimeout, err = envMillis("BENCH_PING_TIMEOUT_MS"); err != nil {
		return nil, err
	}
	srv, err := socketio.New(opts)
	if err != nil {
		return nil, err
	}
	return &wsgateSocketIO{h: w.h, srv: srv}, nil
}

// envMillis reads a duration in milliseconds from the environment; zero
// (the default) when it is not set.
func envMillis(name string) (time.Duration, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return 0, nil
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms < 1 {
		return 0, fmt.Errorf("%s must be a positive number of milliseconds, got %q", name, v)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func (s *wsgateSocketIO) Handler() http.Handler { return s.srv }

// Pattern is where the server mounts Handler.
func (s *wsgateSocketIO) Pattern() string { return "/socket.io/" }

func (s *wsgateSocketIO) Broadcast(payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.h.Broadcast(ctx, wsgateRoom, "bench", json.RawMessage(payload)); err != nil {
		return fmt.Errorf("wsgate-socketio broadcast: %w", err)
	}
	return nil
}

func (s *wsgateSocketIO) Conns() int { return s.h.Connections() }
