package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// Options configures a Server. The zero value of every field but Open is
// safe and documented with its default; New refuses negative values.
type Options struct {
	// Open is called for every new session, before its open packet is
	// sent, with the handshake's request (which must not be kept: copy what
	// is needed). It returns the session's Receiver, or an error to refuse
	// the handshake, which is answered as Check's errors are. It runs
	// outside the engine's locks. Required.
	Open func(s *Session, r *http.Request) (Receiver, error)

	// Check, when set, is called first for every HTTP request the Server
	// serves: handshakes, polling GETs and POSTs, WebSocket handshakes and
	// upgrades, with or without a session id, well-formed or not. handshake
	// reports a request without a session id (one that would create a
	// session), so that a throttle can count only those. A non-nil error
	// refuses the request before anything else happens: a
	// *protocol.Refusal is written as it says, an eio.ErrorCode as
	// Engine.IO's error body, anything else as 403 with Engine.IO's
	// "Forbidden" body. A request refused this way changes no session.
	Check func(r *http.Request, handshake bool) error

	// PingInterval is how often the server pings a session; PingTimeout
	// how long it waits for the pong before closing the session. Both are
	// announced in the open packet. Defaults 25 s and 20 s, as the
	// reference server's.
	PingInterval time.Duration
	PingTimeout  time.Duration

	// UpgradeTimeout bounds an upgrade from polling to WebSocket: a probe
	// socket that has not completed the upgrade by then is closed and the
	// session stays on polling. Default 10 s.
	UpgradeTimeout time.Duration

	// MaxPayload is the largest WebSocket message or long-polling request
	// body accepted, in bytes, announced as maxPayload. A body over it is
	// answered 413, a message over it closes with 1009; either closes the
	// session. Default eio.DefaultMaxPayload (1,000,000).
	MaxPayload int

	// MaxPackets is the largest number of packets in one long-polling body.
	// Default eio.DefaultMaxPackets.
	MaxPackets int

	// MaxSessions bounds the session table: a handshake beyond it is
	// refused with 503. Sessions count from their handshake, whether or not
	// anything happens on them. Default 10,000.
	MaxSessions int

	// MaxQueued and MaxQueuedBytes bound what is queued for one session and
	// not yet written, in frames (Engine.IO packets) and payload bytes. A
	// Send that would exceed either fails with ErrFull and queues nothing.
	// A WebSocket's writer keeps room for a few more small frames, the
	// engine's own (open, ping, probe answer), and while it writes a batch
	// it may hold twice the bounds (see wire.WriterConfig). Defaults 256
	// and 1 MiB.
	MaxQueued      int
	MaxQueuedBytes int

	// BodyBudget bounds the long-polling request bodies being read at once,
	// across all sessions, in bytes: a POST whose declared length (or
	// MaxPayload when it declares none) does not fit is answered 503 and
	// its session closed, so a flood of large POSTs cannot take more
	// memory than this. Default 64 MiB.
	BodyBudget int64

	// BodyTimeout bounds the reading of one long-polling request body; a
	// slower body is answered 408 and its session closed. Default 10 s.
	BodyTimeout time.Duration

	// WriteTimeout bounds each write to a client that does not read: a
	// polling response, or a blocked WebSocket write (see
	// wire.WriterConfig). Default 10 s.
	WriteTimeout time.Duration

	// Cookie, when its Name is set, is set on every handshake response so
	// that a load balancer can route a polling session's later requests to
	// this node (see Cookie).
	Cookie Cookie

	// Logger receives the engine's log lines (protocol errors, panics in
	// callbacks). Nil discards them. Session ids never appear in them.
	Logger *slog.Logger

	// Pool writes WebSocket frames for the sessions' writers. Nil: the
	// Server makes one with GOMAXPROCS workers.
	Pool *wire.Pool

	// raceHold replaces the const raceHold when set: tests that need one
	// side of a race to win whatever the machine's load lengthen it.
	raceHold time.Duration
}

// Cookie is the sticky-routing cookie. Long-polling sends every request of
// a session as a separate HTTP request, and only the node that made the
// session knows it: behind a load balancer, each request must reach that
// node. Set Name and a Value that names this node (its id), and route on
// the cookie in the balancer (for example a cookie-based stickiness rule,
// or a proxy that maps the value to a backend). Browsers send it back on
// same-origin requests, and on cross-origin ones when the client is
// configured withCredentials. WebSocket sessions need no stickiness once
// connected; the cookie is set on their handshake too, so that a reconnect
// through polling lands where it should.
type Cookie struct {
	// Name of the cookie; empty disables it.
	Name string
	// Value identifies this node; required with Name.
	Value string
	// Path of the cookie. Default "/".
	Path string
	// Secure marks the cookie Secure. It is also Secure whenever the
	// handshake came over TLS.
	Secure bool
	// MaxAge in seconds; zero makes a session cookie (the browser keeps it
	// until it closes), which is what stickiness needs.
	MaxAge int
}

// Defaults of Options.
const (
	DefaultPingInterval   = 25 * time.Second
	DefaultPingTimeout    = 20 * time.Second
	DefaultUpgradeTimeout = 10 * time.Second
	DefaultMaxSessions    = 10_000
	DefaultMaxQueued      = 256
	DefaultMaxQueuedBytes = 1 << 20
	DefaultBodyBudget     = 64 << 20
	DefaultBodyTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
)

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Open == nil {
		return o, errors.New("engine: Options.Open is required")
	}
	for name, d := range map[string]time.Duration{
		"PingInterval": o.PingInterval, "PingTimeout": o.PingTimeout, "UpgradeTimeout": o.UpgradeTimeout,
		"BodyTimeout": o.BodyTimeout, "WriteTimeout": o.WriteTimeout,
	} {
		if d < 0 {
			return o, fmt.Errorf("engine: Options.%s is negative", name)
		}
	}
	for name, n := range map[string]int64{
		"MaxPayload": int64(o.MaxPayload), "MaxPackets": int64(o.MaxPackets), "MaxSessions": int64(o.MaxSessions),
		"MaxQueued": int64(o.MaxQueued), "MaxQueuedBytes": int64(o.MaxQueuedBytes), "BodyBudget": o.BodyBudget,
	} {
		if n < 0 {
			return o, fmt.Errorf("engine: Options.%s is negative", name)
		}
	}
	setDuration(&o.PingInterval, DefaultPingInterval)
	setDuration(&o.PingTimeout, DefaultPingTimeout)
	setDuration(&o.UpgradeTimeout, DefaultUpgradeTimeout)
	setDuration(&o.BodyTimeout, DefaultBodyTimeout)
	setDuration(&o.WriteTimeout, DefaultWriteTimeout)
	setDuration(&o.raceHold, raceHold)
	setInt(&o.MaxPayload, eio.DefaultMaxPayload)
	setInt(&o.MaxPackets, eio.DefaultMaxPackets)
	setInt(&o.MaxSessions, DefaultMaxSessions)
	setInt(&o.MaxQueued, DefaultMaxQueued)
	setInt(&o.MaxQueuedBytes, DefaultMaxQueuedBytes)
	if o.BodyBudget == 0 {
		o.BodyBudget = DefaultBodyBudget
	}
	if o.BodyBudget < int64(o.MaxPayload) {
		return o, fmt.Errorf("engine: Options.BodyBudget %d is below MaxPayload %d: no full-size POST could be read", o.BodyBudget, o.MaxPayload)
	}
	if err := o.Cookie.check(); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func (c Cookie) check() error {
	if c.Name == "" {
		if c.Value != "" {
			return errors.New("engine: Cookie.Value is set without a Name")
		}
		return nil
	}
	if c.Value == "" {
		return errors.New("engine: Cookie.Value (this node's id) is required with a Name")
	}
	if err := c.cookie(false).Valid(); err != nil {
		return fmt.Errorf("engine: Cookie: %w", err)
	}
	return nil
}

// cookie returns the http.Cookie to set; tls says the handshake came over
// TLS.
func (c Cookie) cookie(tls bool) *http.Cookie {
	path := c.Path
	if path == "" {
		path = "/"
	}
	return &http.Cookie{
		Name: c.Name, Value: c.Value, Path: path, MaxAge: c.MaxAge,
		Secure: c.Secure || tls, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}
