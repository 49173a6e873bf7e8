// Command nodefixture is the server the socket.io-client tests
// (socketio/testdata/node/client/*.test.mjs) run against beside
// examples/chat, for what the chat does not serve: binary events and
// acks, a second namespace on the same session, a server that asks its
// clients for acks (EmitWithAck), a server that publishes continuously
// while a client upgrades from polling to WebSocket, and connection state
// recovery across nodes (client/recovery.test.mjs). A test fixture only.
//
//	WSGATE_JWT_SECRET=<32+ bytes> go run ./socketio/internal/nodefixture -addr 127.0.0.1:0 [-redis 127.0.0.1:6379]
//
// Tokens are HS256 JWTs signed with WSGATE_JWT_SECRET; pages of loopback
// origins may connect (the socketio default). It prints "listening on
// http://ADDR" once it accepts connections, and shuts down gracefully on
// SIGTERM (sessions closed with 1012, so clients reconnect).
//
// Connection state recovery is on (MaxDisconnectionDuration 2 minutes),
// with history for the rooms of kinds "news" and "user" (100 messages, 2
// minutes each). With -redis, the main hub's broker and the session store
// are on that Redis (adapter/redis), so that several fixtures make a
// cluster and a session outlives its node; without it, both are in memory.
// Clients may join "news:<anything>" (the join event).
//
// Namespace "/":
//
//	echo        any data → the same data
//	upload      {name, data: bytes, parts: [{data: bytes}]} → a Binary
//	            {name, size, parts, data: the bytes reversed}
//	slow        {ms ≤ 3000} → {slept: ms}, after ms milliseconds
//	ask         {q} → asks the client "question" {q} with EmitWithAck and
//	            answers {answer} (or {err})
//	ask-binary  {q} → the same with a Binary question {q, blob: "bytes!"}
//	stream      {count ≤ 5000, everyMs 1..100} → {started: true}, then
//	            "tick" {seq: 0..count-1} to the user, every everyMs
//	publish     {room: "news:…", from, to ≤ from+999} → {published: count},
//	            once "news" {n} was broadcast to the room for each n in
//	            from..to, in order
//
// Namespace "/notifications":
//
//	whoami      → {namespace: "/notifications", user}
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
	"github.com/wsgate/wsgate/socketio"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, log); err != nil {
		log.Error("exit", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down within shutdownGrace.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("nodefixture", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	redisAddr := fs.String("redis", "", "Redis address (host:port) for the broker and the session store; default: both in memory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := newFixture([]byte(getenv("WSGATE_JWT_SECRET")), *redisAddr, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = f.shutdown(context.Background())
		return err
	}
	srv := &http.Server{Handler: f.sio, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		_ = f.shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return errors.Join(f.shutdown(sctx), srv.Shutdown(sctx))
}

const shutdownGrace = 5 * time.Second

// fixture is the two hubs and the Socket.IO server in front of them.
type fixture struct {
	main, notif *hub.Hub
	sio         *socketio.Server
	sessions    interface {
		adapter.SessionStore
		Close() error
	}
	streams chan struct{} // a slot per running stream
}

// History of the fixture's rooms, and how long a session can be resumed.
var (
	history = map[string]hub.HistoryPolicy{
		"news": {Size: 100, TTL: 2 * time.Minute},
		"user": {Size: 100, TTL: 2 * time.Minute},
	}
	maxDisconnection = 2 * time.Minute
)

// maxStreams bounds the streams running at once.
const maxStreams = 4

func newFixture(secret []byte, redisAddr string, log *slog.Logger) (*fixture, error) {
	verifier, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
	if err != nil {
		return nil, fmt.Errorf("nodefixture: WSGATE_JWT_SECRET: %w", err)
	}
	rooms, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{
		"news": func(context.Context, auth.Identity, room.Name) (bool, error) { return true, nil },
	}})
	if err != nil {
		return nil, err
	}
	f := &fixture{streams: make(chan struct{}, maxStreams)}
	opts := hub.Options{Authenticator: verifier, Rooms: rooms, History: history, Logger: log}
	if redisAddr == "" {
		f.sessions = memory.NewSessions(memory.SessionsOptions{})
	} else {
		if f.sessions, err = redis.NewSessions(redis.SessionsOptions{Addrs: []string{redisAddr}, Logger: log}); err != nil {
			return nil, fmt.Errorf("nodefixture: -redis: %w", err)
		}
		broker, err := redis.New(redis.Options{Addrs: []string{redisAddr}, HMACKey: brokerKey(secret), Logger: log})
		if err != nil {
			_ = f.sessions.Close()
			return nil, fmt.Errorf("nodefixture: -redis: %w", err)
		}
		mainOpts := opts
		mainOpts.Broker, mainOpts.CloseBroker = broker, true
		if f.main, err = hub.New(mainOpts); err != nil {
			_ = broker.Close()
			_ = f.sessions.Close()
			return nil, err
		}
	}
	if f.main == nil {
		if f.main, err = hub.New(opts); err != nil {
			_ = f.sessions.Close()
			return nil, err
		}
	}
	// The second namespace's hub stays on its own in-memory broker: the
	// cross-node tests use the main one only.
	if f.notif, err = hub.New(opts); err != nil {
		_ = f.main.Shutdown(context.Background())
		_ = f.sessions.Close()
		return nil, err
	}
	f.handlers()
	f.sio, err = socketio.New(socketio.Options{
		Namespaces: map[string]*hub.Hub{"/": f.main, "/notifications": f.notif},
		Logger:     log,
		Recovery:   &socketio.Recovery{Store: f.sessions, MaxDisconnectionDuration: maxDisconnection},
	})
	if err != nil {
		_ = f.shutdown(context.Background())
		return nil, err
	}
	return f, nil
}

// brokerKey derives the key that signs the messages between nodes from the
// token secret, so that the fixtures of one test share it without using
// one key for two purposes.
func brokerKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("nodefixture redis broker"))
	return m.Sum(nil)
}

func (f *fixture) shutdown(ctx context.Context) error {
	var errs []error
	if f.sio != nil {
		errs = append(errs, f.sio.Shutdown(ctx))
	}
	// The store last: the sessions that end save their records into it.
	errs = append(errs, f.main.Shutdown(ctx), f.notif.Shutdown(ctx))
	return errors.Join(append(errs, f.sessions.Close())...)
}
