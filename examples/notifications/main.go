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

	"github.com/wsgate/wsgate/auth"
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
// gracefully; "token" as the first argument runs the token subcommand
// instead. Demo tokens go to out, not to the log: logs never hold tokens.
// Usage and flag errors go to errOut.
func run(args []string, getenv func(string) string, out, errOut io.Writer, log *slog.Logger) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], getenv, out, errOut)
	}
	fs := flag.NewFlagSet("notifications", flag.ContinueOnError)
	fs.SetOutput(errOut)
	addr := fs.String("addr", envOr(getenv, "WSGATE_ADDR", "127.0.0.1:8081"), "listen address (env WSGATE_ADDR)")
	origins := fs.String("origins", getenv("WSGATE_ORIGINS"), "comma-separated page origins allowed to connect; default http://<addr> (env WSGATE_ORIGINS)")
	redisURL := fs.String("redis", getenv("REDIS_URL"), "Redis URL for a multi-instance deployment, e.g. redis://127.0.0.1:6379/0; default: in-memory broker (env REDIS_URL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h printed the usage; that is a success
		}
		return err
	}
	cfg := config{
		Addr:         *addr,
		Origins:      splitList(*origins),
		Secret:       []byte(getenv("WSGATE_JWT_SECRET")),
		Issuer:       getenv("WSGATE_JWT_ISSUER"),
		Audience:     getenv("WSGATE_JWT_AUDIENCE"),
		RedisURL:     *redisURL,
		RedisHMACKey: []byte(getenv("WSGATE_REDIS_HMAC_KEY")),
		Logger:       log,
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
		// deadlines, so they bound API requests and handshakes only.
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
	log.Info("listening", slog.String("addr", cfg.Addr), slog.Bool("demo", s.demo), slog.Bool("redis", s.redis != nil))

	select {
	case err := <-serveErr:
		_ = s.Shutdown(context.Background())
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

// runToken prints a token for one seeded user, signed with
// WSGATE_JWT_SECRET: what an identity provider would hand out, so that
// several instances sharing the secret can be tried by hand. It is a
// development tool: whoever holds the secret can sign tokens anyway.
func runToken(args []string, getenv func(string) string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("notifications token", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: notifications token [-ttl 1h] alice|bob|carol|root   (signs with WSGATE_JWT_SECRET)")
		fs.PrintDefaults()
	}
	ttl := fs.Duration("ttl", time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	secret := []byte(getenv("WSGATE_JWT_SECRET"))
	if len(secret) < auth.MinHMACSecretBytes {
		return fmt.Errorf("notifications token: WSGATE_JWT_SECRET must be set, at least %d bytes", auth.MinHMACSecretBytes)
	}
	if fs.NArg() != 1 || *ttl <= 0 {
		fs.Usage()
		return errors.New("notifications token: name one user and a positive -ttl")
	}
	a, ok := newDirectory().lookup(context.Background(), fs.Arg(0))
	if !ok {
		return fmt.Errorf("notifications token: %q is not a seeded user (alice, bob, carol, root)", fs.Arg(0))
	}
	issuer := tokenIssuer{secret: secret, issuer: getenv("WSGATE_JWT_ISSUER"), audience: getenv("WSGATE_JWT_AUDIENCE"), ttl: *ttl}
	token, _, err := issuer.sign(a)
	if err != nil {
		return fmt.Errorf("notifications token: %w", err)
	}
	fmt.Fprintln(out, token)
	return nil
}

func printDemoTokens(out io.Writer, s *server, addr string) {
	fmt.Fprintf(out, "demo mode: tokens for this run (connect with Origin http://%s):\n", addr)
	for _, a := range s.dir.accounts {
		token, err := s.demoToken(a.ID)
		if err != nil {
			continue
		}
		who := "tenant " + a.Tenant
		if a.Tenant == "" {
			who = "platform"
		}
		if len(a.Roles) > 0 {
			who += ", " + strings.Join(a.Roles, " ")
		}
		fmt.Fprintf(out, "  %-5s (%s)\n        %s\n", a.ID, who, token)
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
