// Command socketio-conformance serves the fixture of the official
// Engine.IO and Socket.IO protocol suites on one address: the Engine.IO
// echo on /engine.io/ and the Socket.IO fixture on /socket.io/ (two wsgate
// hubs served by package socketio), with the suites' settings: ping
// interval 300 ms, ping timeout 200 ms, max payload 1,000,000 bytes,
// connect timeout 1 s, no Origin needed, any credential accepted. A test
// fixture only, never for production: it echoes anything to anyone.
//
//	go run ./examples/socketio-conformance -addr 127.0.0.1:3000
//	../shared/conformance/socketio/run.sh engine.io-protocol http://127.0.0.1:3000
//
// It prints "listening on http://ADDR" once it accepts connections, so a
// script can start it on port 0 and read the port it got.
package main

import (
	"context"
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

	"github.com/wsgate/wsgate/socketio/conformance"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		log.Error("exit", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down within a second.
func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("socketio-conformance", flag.ContinueOnError)
	fs.SetOutput(errOut)
	addr := fs.String("addr", "127.0.0.1:3000", "listen address (port 0 picks a free port)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	fx, err := conformance.New()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: fx, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = fx.Shutdown(sctx)
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
