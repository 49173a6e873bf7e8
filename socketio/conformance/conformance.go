// Package conformance is the server the official Engine.IO and Socket.IO
// protocol suites are written against (../shared/conformance/socketio in
// the project's checkout): their settings, no origin check and no
// credential, and the reference fixture's behaviour. It exists for
// examples/socketio-conformance and CI, not for production use: it
// accepts any origin and echoes whatever it is sent.
//
//	fx, err := conformance.New()
//	// handle err
//	http.ListenAndServe("127.0.0.1:3000", fx)
package conformance

import (
	"context"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
	"github.com/wsgate/wsgate/socketio/internal/engine"
)

// The suites' settings, hard-coded in both of them.
const (
	PingInterval = 300 * time.Millisecond
	PingTimeout  = 200 * time.Millisecond
	MaxPayload   = 1_000_000
)

// Fixture serves the suites' paths: the Engine.IO echo on /engine.io/.
// The Socket.IO fixture on /socket.io/ comes with the hub integration;
// until then that path answers 404.
type Fixture struct {
	mux    *http.ServeMux
	engine *engine.Server
}

// New returns the fixture.
func New() (*Fixture, error) {
	eng, err := engine.New(engine.Options{
		PingInterval: PingInterval,
		PingTimeout:  PingTimeout,
		MaxPayload:   MaxPayload,
		Open: func(s *engine.Session, _ *http.Request) (engine.Receiver, error) {
			return echo{s}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	fx := &Fixture{mux: http.NewServeMux(), engine: eng}
	fx.mux.Handle("/engine.io/", eng)
	// The Socket.IO suite's fixture (namespaces /, /custom; auth echo;
	// message-back; acks) is mounted here once the Socket.IO layer serves
	// hub handlers.
	return fx, nil
}

// ServeHTTP implements http.Handler.
func (fx *Fixture) ServeHTTP(w http.ResponseWriter, r *http.Request) { fx.mux.ServeHTTP(w, r) }

// Shutdown closes every session, waiting for them until ctx is done.
func (fx *Fixture) Shutdown(ctx context.Context) error { return fx.engine.Shutdown(ctx) }

// echo sends every message back on its session, text as text, binary as
// binary, as the reference fixture does.
type echo struct{ s *engine.Session }

func (e echo) Message(p eio.Packet) {
	var f wire.Frame
	if p.Binary {
		f = wire.Frame{Op: wire.OpBinary, Payload: append([]byte(nil), p.Data...)}
	} else {
		f = wire.Frame{Op: wire.OpText, Payload: append([]byte{'0' + byte(eio.Message)}, p.Data...)}
	}
	// A full queue drops the echo: the client is not reading.
	_ = e.s.Send(f)
}

func (echo) Closed(engine.CloseInfo) {}
