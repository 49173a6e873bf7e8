package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// demoProjects is the membership the service starts with.
var demoProjects = map[string][]string{
	"5b0e7c1a-2f4d-4e8a-9c3b-7d6e5f4a3b21": {"alice", "bob"},
	"9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a": {"alice"},
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(os.Getenv, log); err != nil {
		log.Error("exit", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// run serves until SIGINT or SIGTERM, then shuts down gracefully: the
// WebSockets first (hijacked, so http.Server.Shutdown does not wait for
// them), then the HTTP server, then Redis and the JWKS refresh.
func run(getenv func(string) string, log *slog.Logger) error {
	addr := getenv("EMBED_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	cfg := config{
		Origins:      splitList(getenv("EMBED_ORIGINS")),
		JWKSURL:      getenv("EMBED_JWKS_URL"),
		Issuer:       getenv("EMBED_ISSUER"),
		Audience:     getenv("EMBED_AUDIENCE"),
		RedisAddr:    getenv("EMBED_REDIS_ADDR"),
		RedisHMACKey: []byte(getenv("EMBED_REDIS_HMAC_KEY")),
		Logger:       log,
	}
	s, err := newService(cfg)
	if err != nil {
		return err
	}
	defer s.close()
	srv := &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ListenAndServe() }()
	log.Info("listening", slog.String("addr", addr))
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hubErr := s.shutdown(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return hubErr
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
