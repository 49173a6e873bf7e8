package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, log); err != nil {
		log.Error("exit", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// run parses the command line, serves until a signal arrives and shuts down
// gracefully. Demo tokens go to out, not to the log: logs never hold tokens.
// Usage and flag errors go to errOut.
func run(args []string, getenv func(string) string, out, errOut io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(errOut)
	addr := fs.String("addr", envOr(getenv, "WSGATE_ADDR", "127.0.0.1:8080"), "listen address (env WSGATE_ADDR)")
	origins := fs.String("origins", getenv("WSGATE_ORIGINS"), "comma-separated page origins allowed to connect; default http://<addr> and, on loopback, its localhost or 127.0.0.1 twin (env WSGATE_ORIGINS)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h printed the usage; that is a success
		}
		return err
	}
	cfg := config{
		Addr:     *addr,
		Origins:  splitList(*origins),
		Secret:   []byte(getenv("WSGATE_JWT_SECRET")),
		Issuer:   getenv("WSGATE_JWT_ISSUER"),
		Audience: getenv("WSGATE_JWT_AUDIENCE"),
		Logger:   log,
	}
	s, err := newServer(cfg)
	if err != nil {
		return err
	}
	if s.demo {
		log.Warn("demo_mode", slog.String("reason", "WSGATE_JWT_SECRET is unset; using a random secret for this run"))
		printDemoTokens(out, s, cfg.Addr)
	}

	srv := &http.Server{
		Addr:    cfg.Addr,
		Handler: s,
		// The hub hijacks WebSocket connections, which clears these
		// deadlines, so they bound plain requests and handshakes only.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ListenAndServe() }()
	log.Info("listening", slog.String("addr", cfg.Addr), slog.Bool("demo", s.demo))

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills the process the default way
	log.Info("shutting_down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// The hub first: WebSockets are hijacked, so http.Server.Shutdown would
	// not wait for them. Clients get "bye" and 1012 and reconnect elsewhere.
	hubErr := s.Shutdown(sctx)
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

func printDemoTokens(out io.Writer, s *server, addr string) {
	fmt.Fprintf(out, "demo mode: open http://%s/ and pick a user, or connect with a token:\n", addr)
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
