package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// shutdownGrace bounds the drain on SIGINT/SIGTERM; orchestrators usually
// kill after 30 s, so this leaves room for the HTTP server to close too.
const shutdownGrace = 20 * time.Second

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills the process the default way.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, log); err != nil {
		log.Error("exit", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// run parses the command line, serves until ctx is done (main cancels it
// on SIGINT or SIGTERM) and shuts down gracefully. Demo tokens go to out,
// not to the log: logs never hold tokens. Usage and flag errors go to
// errOut.
func run(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(errOut)
	addr := fs.String("addr", envOr(getenv, "WSGATE_ADDR", "127.0.0.1:8080"), "listen address (env WSGATE_ADDR)")
	origins := fs.String("origins", getenv("WSGATE_ORIGINS"), "comma-separated page origins allowed to connect; default http://<addr> (https:// with TLS) and, on loopback, its localhost or 127.0.0.1 twin (env WSGATE_ORIGINS)")
	tlsCert := fs.String("tls-cert", getenv("WSGATE_TLS_CERT"), "PEM certificate (chain) file: serve HTTPS and WSS; needs -tls-key (env WSGATE_TLS_CERT)")
	tlsKey := fs.String("tls-key", getenv("WSGATE_TLS_KEY"), "PEM private key file of -tls-cert (env WSGATE_TLS_KEY)")
	sioClient := fs.String("socketio-client", getenv("WSGATE_SOCKETIO_CLIENT"), "socket.io-client's dist/socket.io.esm.min.js (from npm): serve the page's Socket.IO variant on /socketio (env WSGATE_SOCKETIO_CLIENT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h printed the usage; that is a success
		}
		return err
	}
	tlsConfig, err := loadTLS(*tlsCert, *tlsKey)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	cfg := config{
		Addr:     *addr,
		TLS:      tlsConfig != nil,
		Origins:  splitList(*origins),
		Secret:   []byte(getenv("WSGATE_JWT_SECRET")),
		Issuer:   getenv("WSGATE_JWT_ISSUER"),
		Audience: getenv("WSGATE_JWT_AUDIENCE"),
		Logger:   log,

		SocketIOClient: *sioClient,
	}
	s, err := newServer(cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = s.Shutdown(context.Background())
		return err
	}
	if s.demo {
		log.Warn("demo_mode", slog.String("reason", "WSGATE_JWT_SECRET is unset; using a random secret for this run"))
		printDemoTokens(out, s, cfg.Addr, cfg.TLS)
	}
	srv := newHTTPServer(s, tlsConfig, log)
	log.Info("listening", slog.String("addr", l.Addr().String()), slog.Bool("tls", cfg.TLS), slog.Bool("demo", s.demo))
	return serve(ctx, srv, l, s.Shutdown, log)
}

// newHTTPServer wraps handler with the timeouts every example uses, and
// TLS when tlsConfig is set.
func newHTTPServer(handler http.Handler, tlsConfig *tls.Config, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler: handler,
		// The hub hijacks WebSocket connections, which clears these
		// deadlines, so they bound plain requests and handshakes only.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
	}
	if tlsConfig != nil {
		// HTTP/1.1 only: the upgrade hijacks the connection, which an
		// HTTP/2 stream cannot be, so a client must not be offered h2.
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
	}
	return srv
}

// serve runs srv on l until ctx is done, then drains: the hub first
// (shutdown), since WebSockets are hijacked and http.Server.Shutdown would
// not wait for them; clients get "bye" and 1012 and reconnect elsewhere.
func serve(ctx context.Context, srv *http.Server, l net.Listener, shutdown func(context.Context) error, log *slog.Logger) error {
	serveErr := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			serveErr <- srv.ServeTLS(l, "", "")
		} else {
			serveErr <- srv.Serve(l)
		}
	}()
	select {
	case err := <-serveErr:
		_ = shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting_down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	hubErr := shutdown(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if hubErr != nil {
		return fmt.Errorf("hub shutdown: %w", hubErr)
	}
	log.Info("stopped")
	return nil
}

// loadTLS reads the certificate and key files, or returns nil when both
// are empty. One without the other is a mistake, not plain HTTP.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("-tls-cert and -tls-key go together: set both or neither")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

func printDemoTokens(out io.Writer, s *server, addr string, https bool) {
	scheme := "http"
	if https {
		scheme = "https"
	}
	fmt.Fprintf(out, "demo mode: open %s://%s/ and pick a user, or connect with a token:\n", scheme, addr)
	for _, user := range s.dir.users {
		token, _, err := s.demoToken(user)
		if err != nil {
			continue
		}
		fmt.Fprintf(out, "  %-6s %s\n", user, token)
	}
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// splitList splits a comma-separated flag, dropping empty entries so that a
// trailing comma does not become an (invalid) empty origin.
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
