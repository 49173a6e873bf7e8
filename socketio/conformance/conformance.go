// Package conformance is the server the official Engine.IO and Socket.IO
// protocol suites are written against (../shared/conformance/socketio in
// the project's checkout): their settings, no credential, and the
// reference fixture's behaviour. It exists for
// examples/socketio-conformance and CI, and is a test fixture only: it
// accepts any credential from anyone and echoes whatever it is sent.
//
//	fx, err := conformance.New()
//	// handle err
//	http.ListenAndServe("127.0.0.1:3000", fx)
//
// On /engine.io/ it echoes every Engine.IO message. On /socket.io/ it is
// the Socket.IO fixture, built as a wsgate service is — two hubs, "/" and
// "/custom", served by a socketio.Server — so that the suite checks the
// hub integration, not a separate echo: a connection to either namespace
// is sent the event "auth" with its CONNECT payload; on "/", "message" is
// answered with "message-back" and the same arguments and
// "message-with-ack" is acked with them, binary attachments included; any
// other namespace is refused.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio"
	"github.com/wsgate/wsgate/socketio/internal/eio"
	"github.com/wsgate/wsgate/socketio/internal/engine"
)

// The suites' settings, hard-coded in both of them.
const (
	PingInterval   = 300 * time.Millisecond
	PingTimeout    = 200 * time.Millisecond
	MaxPayload     = 1_000_000
	ConnectTimeout = time.Second
)

// connectEvent receives each CONNECT's payload; Socket.IO clients cannot
// send an event of this reserved name themselves.
const connectEvent = "connect"

// Fixture serves the suites' paths: the Engine.IO echo on /engine.io/, the
// Socket.IO fixture on /socket.io/.
type Fixture struct {
	mux    *http.ServeMux
	engine *engine.Server
	sio    *socketio.Server
	hubs   []*hub.Hub
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
	if err := fx.socketIO(); err != nil {
		return nil, err
	}
	fx.mux.Handle("/engine.io/", eng)
	fx.mux.Handle("/socket.io/", fx.sio)
	return fx, nil
}

// socketIO builds the Socket.IO fixture: its hubs and the server.
func (fx *Fixture) socketIO() error {
	main, err := newHub()
	if err != nil {
		return err
	}
	custom, err := newHub()
	if err != nil {
		return err
	}
	fx.hubs = []*hub.Hub{main, custom}
	for _, h := range fx.hubs {
		hub.Handle(h, connectEvent, func(ctx hub.Context, payload json.RawMessage) (struct{}, error) {
			return struct{}{}, ctx.Emit("auth", payload)
		})
	}
	// AllArguments: the arguments travel as one JSON array, so that an
	// echo keeps them all, and the placeholders stay, with their bytes in
	// Attachments.
	hub.Handle(main, "message", func(ctx hub.Context, args json.RawMessage) (struct{}, error) {
		return struct{}{}, socketio.Emit(ctx, "message-back", socketio.Binary{JSON: args, Attachments: socketio.Attachments(ctx)})
	})
	hub.Handle(main, "message-with-ack", func(ctx hub.Context, args json.RawMessage) (socketio.Binary, error) {
		return socketio.Binary{JSON: args, Attachments: socketio.Attachments(ctx)}, nil
	})
	// The suites send no Origin; a browser running them would.
	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: []string{"http://localhost:3000"}, AllowMissing: true})
	if err != nil {
		return err
	}
	fx.sio, err = socketio.New(socketio.Options{
		Namespaces:     map[string]*hub.Hub{"/": main, "/custom": custom},
		Mode:           socketio.AllArguments,
		AuthToken:      func(json.RawMessage) string { return "fixture" },
		ConnectEvent:   connectEvent,
		Origins:        origins,
		ConnectTimeout: ConnectTimeout,
		PingInterval:   PingInterval,
		PingTimeout:    PingTimeout,
	})
	return err
}

// newHub returns a hub with the suites' message size that admits anyone.
func newHub() (*hub.Hub, error) {
	return hub.New(hub.Options{
		Authenticator:   anyone{},
		MaxMessageBytes: MaxPayload,
		// The suites send nothing that needs rooms; the default policy
		// still applies to what they could.
	})
}

// anyone is the fixture's Authenticator: every credential is the same
// anonymous user. Never use it outside a test fixture.
type anyone struct{}

func (anyone) Authenticate(context.Context, string) (auth.Identity, error) {
	return auth.Identity{UserID: "anonymous"}, nil
}

// ServeHTTP implements http.Handler.
func (fx *Fixture) ServeHTTP(w http.ResponseWriter, r *http.Request) { fx.mux.ServeHTTP(w, r) }

// Shutdown closes every session and the hubs, waiting for them until ctx
// is done.
func (fx *Fixture) Shutdown(ctx context.Context) error {
	errs := []error{fx.sio.Shutdown(ctx), fx.engine.Shutdown(ctx)}
	for _, h := range fx.hubs {
		errs = append(errs, h.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

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
