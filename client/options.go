package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// TokenTransport says how the credential reaches the server.
type TokenTransport uint8

const (
	// TokenHeader sends "Authorization: Bearer <token>" with the handshake.
	// The default.
	TokenHeader TokenTransport = iota
	// TokenSubprotocol sends the token as a "wsgate.bearer.<token>" entry of
	// Sec-WebSocket-Protocol, the way browsers must since they cannot set
	// headers. The server answers with wsgate.v1 and never echoes it.
	TokenSubprotocol
	// TokenFirstMessage upgrades without a credential and authenticates with
	// the first message ({"type":"auth"}). The server must enable
	// hub.Options.FirstMessageAuth; it refuses with close code 4001.
	TokenFirstMessage
)

// Backoff is the wait before a reconnect attempt: exponential with full
// jitter. Attempt n (from 0) sleeps a uniformly random duration in
// [0, min(Max, Min·Multiplier^n)), so a thousand clients dropped together
// come back spread over the whole window instead of in one burst. The zero
// value means the defaults.
type Backoff struct {
	// Min is the first attempt's window. Default 500ms.
	Min time.Duration
	// Max caps the window. A connection that stayed up at least Max resets
	// the sequence; a shorter-lived one continues it, so a server that
	// accepts and drops at once is not hammered. Default 30s.
	Max time.Duration
	// Multiplier grows the window per attempt; at least 1. Default 2.
	Multiplier float64
}

// Options configures Dial. Only URL and Token are required; every other
// field's zero value is the documented default.
type Options struct {
	// URL is the hub's endpoint, ws:// or wss:// (http and https are
	// accepted as aliases).
	URL string
	// Token returns the credential. It is called for every connection
	// attempt, so it can hand out a fresh token after an expiry (4003); it
	// must honour ctx, which Close cancels. An error counts as a failed
	// attempt. When the server refused a token, a reconnect happens only if
	// Token returns a different one, and stops if that is refused too.
	Token func(ctx context.Context) (string, error)
	// TokenVia says how the token travels. Default TokenHeader.
	TokenVia TokenTransport
	// Origin is sent as the Origin header. wsgate servers refuse a missing
	// Origin unless configured otherwise, and this client does not invent
	// one: set it to an origin the server allows. Default: none.
	Origin string
	// HTTPHeader is added to every handshake; it is not modified.
	HTTPHeader http.Header
	// HTTPClient performs the handshakes. Default http.DefaultClient.
	HTTPClient *http.Client

	// DialTimeout bounds one connection attempt, from Token to the welcome
	// frame. Default 10s.
	DialTimeout time.Duration
	// AckTimeout bounds Call, Join, Leave and Refresh, waiting for a
	// connection included; they then fail with ErrTimeout. Default 10s.
	AckTimeout time.Duration
	// WriteTimeout bounds writing one frame; a connection that cannot take
	// a frame for that long is dropped and reconnected. Default 10s.
	WriteTimeout time.Duration
	// MaxMessageBytes caps one frame from the server; a larger one ends the
	// connection. Default 1 MiB.
	MaxMessageBytes int64

	// Backoff spaces reconnect attempts. Default {500ms, 30s, 2}.
	Backoff Backoff
	// MaxAttempts stops the client after this many failed reconnect
	// attempts in a row (Closed, with ErrMaxAttempts). Default 0: unlimited.
	MaxAttempts int

	// OnEvent receives the server's events, in order, on a goroutine of the
	// client's (never the read loop: a slow OnEvent does not delay acks).
	// Up to EventQueue events wait for it; past that the connection is
	// dropped with ErrSlowConsumer and re-established. Default: events are
	// discarded.
	OnEvent func(Event)
	// OnError receives error frames that answer no particular message, such
	// as RATE_LIMITED for an Emit. Same goroutine and queue as OnEvent.
	OnError func(*ServerError)
	// OnState receives every state change, in order with the events, on
	// the same goroutine. Default: none.
	OnState func(State)
	// OnRecovery receives, per room whose history the server keeps, what
	// came of each recovery: after a reconnect for every room the client
	// is in (its automatic rooms included), after a Join of a room it has
	// a position for, and when the server reports a gap it could not fill.
	// Recovered false means events were lost: reload the room's state.
	// It is called in order with the events, on the same goroutine: after
	// the missed events of a room that recovered, before the next event of
	// one that did not. Default: none.
	OnRecovery func(Recovery)
	// EventQueue bounds the events and errors waiting for OnEvent and
	// OnError. Default 1024.
	EventQueue int

	// Logger receives connection lifecycle lines (connected, disconnected
	// with the reason, reconnect scheduled, stopped). Never tokens or
	// payloads. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	if o.URL == "" {
		return errors.New("client: Options.URL is required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return fmt.Errorf("client: Options.URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return fmt.Errorf("client: Options.URL scheme %q is not ws or wss", u.Scheme)
	}
	if o.Token == nil {
		return errors.New("client: Options.Token is required")
	}
	if o.TokenVia > TokenFirstMessage {
		return fmt.Errorf("client: unknown TokenTransport %d", o.TokenVia)
	}
	if o.DialTimeout < 0 || o.AckTimeout < 0 || o.WriteTimeout < 0 || o.MaxMessageBytes < 0 ||
		o.MaxAttempts < 0 || o.EventQueue < 0 || o.Backoff.Min < 0 || o.Backoff.Max < 0 || o.Backoff.Multiplier < 0 {
		return errors.New("client: limits and timeouts must not be negative")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.DialTimeout, 10*time.Second)
	def(&o.AckTimeout, 10*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.Backoff.Min, 500*time.Millisecond)
	def(&o.Backoff.Max, 30*time.Second)
	if o.Backoff.Max < o.Backoff.Min {
		return fmt.Errorf("client: Backoff.Max %v is below Backoff.Min %v", o.Backoff.Max, o.Backoff.Min)
	}
	if o.Backoff.Multiplier == 0 {
		o.Backoff.Multiplier = 2
	}
	if o.Backoff.Multiplier < 1 {
		return fmt.Errorf("client: Backoff.Multiplier %v is below 1", o.Backoff.Multiplier)
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 1 << 20
	}
	if o.EventQueue == 0 {
		o.EventQueue = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
