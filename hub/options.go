package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/room"
	"github.com/wsgate/wsgate/sanitize"
)

// SlowConsumerPolicy says what happens when a connection's send queue is full.
type SlowConsumerPolicy uint8

const (
	// Disconnect closes the connection with CloseSlowConsumer (the default):
	// a client that cannot keep up reconnects and resynchronises rather than
	// silently missing messages.
	Disconnect SlowConsumerPolicy = iota
	// Drop discards a broadcast that does not fit and keeps the connection.
	// A reply (ack or error) that does not fit still disconnects, so that no
	// message with an id goes unanswered on a live connection.
	Drop
)

// Limit is a token bucket: Rate events per second on average, Burst at once.
// A positive Rate needs a positive Burst (New refuses a bucket that would
// refuse everything); Every builds the Rate of one event per interval.
type Limit struct {
	Rate  float64
	Burst int
}

// Every returns the Rate of one event every d: Limit{Rate: hub.Every(500 *
// time.Millisecond), Burst: 4}.
func Every(d time.Duration) float64 {
	if d <= 0 {
		return math.Inf(1)
	}
	return float64(time.Second) / float64(d)
}

func (l Limit) check(name string) error {
	switch {
	case l.Rate < 0 || l.Burst < 0:
		return fmt.Errorf("hub: %s must not be negative", name)
	case l.Rate > 0 && l.Burst == 0:
		return fmt.Errorf("hub: %s has a rate but a burst of 0, which refuses every message", name)
	}
	return nil
}

// Options configures a Hub. The zero value of every field is safe; only
// Authenticator is required.
type Options struct {
	// Authenticator verifies credentials. Required: New fails without one.
	Authenticator auth.Authenticator
	// Tokens says where the credential is read from before the upgrade.
	// Default: Authorization header and the wsgate.bearer.<token>
	// subprotocol entry; cookie and query only when named.
	Tokens auth.Extractor
	// FirstMessageAuth lets a connection without a credential upgrade and
	// authenticate with its first message ({"type":"auth"}). Default false:
	// such requests get 401 before the upgrade.
	FirstMessageAuth bool
	// AuthTimeout bounds the wait for the first-message credential. Default 10s.
	AuthTimeout time.Duration

	// CheckOrigin decides whether the request's Origin may connect.
	// Default: only pages served from a loopback address
	// (http://localhost:PORT, http://127.0.0.1:PORT, http://[::1]:PORT), so
	// that the examples work out of the box; a request without Origin is
	// refused. The default does not trust the Host header, which a
	// DNS-rebinding page controls as much as its Origin: a service reached
	// under a real name needs an allowlist, and guard.Origins.Check plugs
	// one in.
	CheckOrigin func(r *http.Request) bool
	// Admit is called once the identity is known, before the upgrade when the
	// credential came with the request. It returns a release func called on
	// disconnect, or an error (a *protocol.Refusal, such as guard's, answers
	// with its own status). guard.Limits.Admit plugs per-user limits in.
	// Default: no limit.
	Admit func(ctx context.Context, userID string) (release func(), err error)
	// ClientIP returns the address logged for the request. Default: the host
	// of RemoteAddr. To honour trusted proxies, wrap guard.Throttle.ClientIP:
	// func(r *http.Request) string { return throttle.ClientIP(r).String() }.
	ClientIP func(r *http.Request) string

	// Rooms authorizes client join requests. Default: room.NewPolicy with
	// GlobalRole — built-in rules only, everything else denied.
	Rooms room.Authorizer
	// GlobalRole is the role whose connections join "global" on connect and
	// may join it on request. Default "" (nobody).
	GlobalRole string
	// AutoRooms returns the rooms a connection joins on connect (and again
	// after a refresh that changes its tenant or roles); the client cannot
	// leave them. An error (a lookup that failed) closes the connection with
	// 1011. Default: room.AutoRooms(id, GlobalRole) — user:{id},
	// tenant:{id}, global.
	AutoRooms func(ctx context.Context, id auth.Identity) ([]string, error)
	// MaxRoomsPerConn caps the rooms one connection may be in, automatic ones
	// included. Default 100.
	MaxRoomsPerConn int

	// ConnContext returns the context a connection's handlers start from,
	// given the upgrade request's context without its cancellation (trace
	// spans, request ids and middleware values survive the upgrade), like
	// http.Server's ConnContext. Default: that context as is.
	ConnContext func(ctx context.Context, r *http.Request) context.Context
	// OnConnect is called once a connection is authenticated and welcomed;
	// OnDisconnect when it has ended, with the reason. Both run on the
	// connection's goroutine, outside every hub lock; a panic in them is
	// logged. Default: none.
	OnConnect    func(info ConnInfo)
	OnDisconnect func(info ConnInfo, reason string)

	// Presence records room membership in a store shared by every node, for
	// Hub.Presence. Default: none; Hub.Presence answers from this
	// node's connections.
	Presence Presence

	// History keeps the recent messages of the rooms of some kinds, keyed
	// by kind ("user", "tenant", "conversation"…), so that a client that
	// comes back recovers what it missed (docs/PROTOCOL.md): events of
	// those rooms carry their offset and epoch, the welcome the tops of the
	// automatic ones, and a join may ask for what came after a position.
	// The history of "user" rooms is what ToUser and broadcasts to the
	// room "user:<id>" sent; both reach the user by identity. New refuses a
	// policy out of its bounds (see HistoryPolicy). Default: none, every
	// room as without history.
	History map[string]HistoryPolicy
	// MaxRecovery is the most messages one recovery replays: a client that
	// missed more is told it did not recover and reloads. Default
	// DefaultMaxRecovery (300).
	MaxRecovery int

	// Broker carries broadcasts between nodes. Default: a new in-memory
	// broker (one process), which Shutdown closes.
	Broker adapter.Broker
	// CloseBroker makes Shutdown close Broker too. Default false: a broker
	// the caller passed in is the caller's to close (it may be shared).
	CloseBroker bool
	// Sanitizer cleans the string fields handlers declare with
	// `sanitize:"html"`. Default: bluemonday strict.
	Sanitizer *sanitize.Sanitizer
	// Observer receives operational events for metrics. Default: none.
	Observer Observer
	// Logger receives the security log. Default: discard. Lines never
	// contain tokens or payloads.
	Logger *slog.Logger
	// Tracer follows handshakes, messages, publishes and deliveries, for
	// distributed tracing (the otel module implements it for
	// OpenTelemetry). Default: NopTracer.
	Tracer Tracer

	// MaxMessageBytes caps one inbound message, after decompression; larger
	// ones close the connection with 1009. Default 64 KiB.
	MaxMessageBytes int64
	// HandlerTimeout bounds a handler; when it passes the client gets
	// TIMEOUT. Default 5s. A handler that ignores its context and runs on
	// keeps its user's admission slot until it returns, and while a user has
	// 8 such handlers on a node, that user's further messages are answered
	// TIMEOUT ("server busy") without running a handler.
	HandlerTimeout time.Duration
	// EventRate is the default per-connection, per-event limit, also applied
	// to join, leave and auth. Default 10/s, burst 20. Handlers override it
	// with WithRateLimit.
	EventRate Limit
	// MessageRate caps all inbound messages of a connection, valid or not.
	// Default 50/s, burst 100.
	MessageRate Limit
	// AbuseLimit is how many rate-limited messages a connection may send
	// within AbuseWindow before it is closed with 1008. Default 50 in 10s.
	AbuseLimit  int
	AbuseWindow time.Duration

	// SendQueueMessages and SendQueueBytes bound each connection's queue of
	// outbound frames. Defaults 256 messages and 1 MiB.
	SendQueueMessages int
	SendQueueBytes    int
	// SlowConsumer says what happens when the queue is full. Default Disconnect.
	SlowConsumer SlowConsumerPolicy
	// WriteTimeout bounds each write to a peer whose socket buffer is full:
	// the peer must take a chunk (at most 16 KiB) within it, or the
	// connection is dropped; what the socket takes at once needs no
	// deadline. Default 10s.
	WriteTimeout time.Duration

	// PingInterval is how often the server pings; PongTimeout how long it
	// waits for the pong before closing a dead peer. Defaults 25s and 20s.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// ClientPingRate meters pings sent by the client. Pings over the rate are
	// not answered; AbuseLimit of them close the connection. Default 1/s,
	// burst 5.
	ClientPingRate Limit
	// IdleTimeout closes a connection that sent no message for this long.
	// Default 0: off, since listen-only clients (notifications) legitimately
	// send nothing; dead peers are caught by the heartbeat instead.
	IdleTimeout time.Duration

	// Compression enables permessage-deflate without context takeover for
	// messages of at least CompressionThreshold bytes (default 1 KiB).
	// Default off.
	Compression          bool
	CompressionThreshold int
}

// checkSigns refuses negative sizes and durations, and rate limits that
// would refuse every message.
func (o *Options) checkSigns() error {
	for _, d := range []time.Duration{o.AuthTimeout, o.HandlerTimeout, o.AbuseWindow, o.WriteTimeout, o.PingInterval, o.PongTimeout, o.IdleTimeout} {
		if d < 0 {
			return errors.New("hub: timeouts and intervals must not be negative")
		}
	}
	for _, n := range []int{o.MaxRoomsPerConn, o.AbuseLimit, o.SendQueueMessages, o.SendQueueBytes, o.CompressionThreshold, o.MaxRecovery} {
		if n < 0 {
			return errors.New("hub: limits and sizes must not be negative")
		}
	}
	if o.MaxMessageBytes < 0 {
		return errors.New("hub: MaxMessageBytes must not be negative")
	}
	for name, l := range map[string]Limit{"EventRate": o.EventRate, "MessageRate": o.MessageRate, "ClientPingRate": o.ClientPingRate} {
		if err := l.check(name); err != nil {
			return err
		}
	}
	return nil
}

func (o *Options) setDefaults() error {
	if o.Authenticator == nil {
		return errors.New("hub: Options.Authenticator is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defLimit := func(l *Limit, r float64, b int) {
		if l.Rate == 0 && l.Burst == 0 {
			*l = Limit{Rate: r, Burst: b}
		}
	}
	def(&o.AuthTimeout, 10*time.Second)
	def(&o.HandlerTimeout, 5*time.Second)
	def(&o.AbuseWindow, 10*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.PingInterval, 25*time.Second)
	def(&o.PongTimeout, 20*time.Second)
	defInt(&o.MaxRoomsPerConn, 100)
	defInt(&o.AbuseLimit, 50)
	defInt(&o.SendQueueMessages, 256)
	defInt(&o.SendQueueBytes, 1<<20)
	defInt(&o.CompressionThreshold, 1024)
	defInt(&o.MaxRecovery, DefaultMaxRecovery)
	defLimit(&o.EventRate, 10, 20)
	defLimit(&o.MessageRate, 50, 100)
	defLimit(&o.ClientPingRate, 1, 5)
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 64 << 10
	}
	if err := o.checkSigns(); err != nil {
		return err
	}
	if o.HandlerTimeout >= o.PongTimeout {
		// The read loop waits for a handler; while it waits, pongs are not
		// read, so a longer handler deadline would fail healthy peers.
		return fmt.Errorf("hub: HandlerTimeout %v must be below PongTimeout %v", o.HandlerTimeout, o.PongTimeout)
	}
	if o.PongTimeout >= o.PingInterval*2 {
		return fmt.Errorf("hub: PongTimeout %v must be below twice PingInterval %v", o.PongTimeout, o.PingInterval)
	}
	if o.CheckOrigin == nil {
		o.CheckOrigin = loopbackOrigin
	}
	if o.ClientIP == nil {
		o.ClientIP = remoteHost
	}
	if o.Rooms == nil {
		p, err := room.NewPolicy(room.PolicyOptions{GlobalRole: o.GlobalRole})
		if err != nil {
			return fmt.Errorf("hub: default room policy: %w", err)
		}
		o.Rooms = p
	}
	if o.AutoRooms == nil {
		role := o.GlobalRole
		o.AutoRooms = func(_ context.Context, id auth.Identity) ([]string, error) { return room.AutoRooms(id, role), nil }
	}
	if o.ConnContext == nil {
		o.ConnContext = func(ctx context.Context, _ *http.Request) context.Context { return ctx }
	}
	if o.Sanitizer == nil {
		o.Sanitizer = sanitize.New(sanitize.Options{})
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tracer == nil {
		o.Tracer = NopTracer{}
	}
	return nil
}

// loopbackOrigin is the default origin check: present, http or https, and
// naming a loopback host. Browsers always send Origin on WebSocket
// handshakes, so a missing one means a non-browser client, which must be
// allowed explicitly.
func loopbackOrigin(r *http.Request) bool {
	u, err := url.Parse(r.Header.Get("Origin"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Path != "" || u.RawQuery != "" {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback() && ip.Zone() == ""
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
