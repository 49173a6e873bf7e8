package socketio

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// Mode says how a namespace maps Socket.IO's event arguments (an event
// carries any number of them) onto the one data value of a hub message,
// and a handler's answer back onto arguments.
type Mode uint8

const (
	// FirstArgument, the default: a handler's input is the event's first
	// argument (no argument: the input's zero value, as a native message
	// without data); further arguments are ignored. The handler's result
	// answers the client's ack callback as its one argument (no argument
	// when the handler returns no data), and server events carry their
	// data as their one argument.
	FirstArgument Mode = iota
	// AllArguments: a handler's input is the JSON array of all the
	// arguments, binary placeholders left in place (Attachments returns
	// their bytes); a result or event data that is a JSON array is sent as
	// that many arguments, anything else as one. It lets a handler take
	// and send several arguments, as socket.emit(event, a, b) does.
	AllArguments
	// NestJS reproduces the IoAdapter of @nestjs/platform-socket.io (the
	// adapter's bindMessageHandlers and mapPayload, and the `exception`
	// event of @nestjs/websockets' BaseWsExceptionFilter), so that the
	// frontends of a NestJS gateway behave the same:
	//
	//   - no argument → the handler's input is its zero value (Nest's
	//     undefined), one → that argument, several → the array of them;
	//   - a result that is a JSON object whose "event" member is a
	//     non-empty string is emitted as that event with the object's
	//     "data" member as its one argument (null when absent), and the ack
	//     callback is not called, as Nest does with a returned
	//     {event, data}; any other result answers the ack callback as its
	//     one argument;
	//   - an error (a refused message or a failed handler), with or without
	//     an ack id, is the event "exception" with the argument
	//     {"status":"error","message":...,"code":...} and no ack.
	//
	// Two things differ, on purpose. A handler that returns no data still
	// answers an ack callback (with no argument): Nest never calls it,
	// leaving the client to its timeout, and wsgate answers every message
	// that has an id. And the exception carries wsgate's error code and
	// not the "cause" Nest 11+ adds by default ({pattern, data}: the
	// client's own message echoed back).
	NestJS
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case FirstArgument:
		return "FirstArgument"
	case AllArguments:
		return "AllArguments"
	case NestJS:
		return "NestJS"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Options configures a Server. Namespaces is required; every other zero
// value is the safe default documented on its field.
type Options struct {
	// Namespaces maps each Socket.IO namespace a client may connect to
	// ("/", "/notifications") to the hub that serves it: its
	// authentication, admission, rooms, handlers, limits and broadcasts.
	// Several namespaces share one Engine.IO session; a CONNECT to a
	// namespace not listed gets CONNECT_ERROR "Invalid namespace".
	// Required, at least one. A namespace starts with '/', holds no comma
	// and has at most 128 bytes.
	Namespaces map[string]*hub.Hub

	// Mode says how event arguments map onto handler input and results.
	// Default FirstArgument.
	Mode Mode
	// JoinEvent and LeaveEvent name the client events that join and leave
	// a room (Socket.IO has no client-side rooms): their first argument is
	// the room name, the hub's room policy decides, and the answer goes to
	// the ack callback (on success no argument, or the room's position
	// {"offset","epoch"} when the room keeps history; the error otherwise).
	// Defaults "join" and "leave".
	JoinEvent, LeaveEvent string
	// ErrorEvent names the event that carries an error when there is no
	// ack callback to answer (a message without an ack id, a token that
	// expired): its argument is {"code":...,"message":...}. Default
	// "error"; in NestJS mode "exception", whose argument is Nest's
	// {"status":"error","message":...} with the code added.
	ErrorEvent string
	// AuthToken returns the credential in a CONNECT's auth payload (a JSON
	// object, nil when the client sent none): "" when it has none, and
	// then the hub's Tokens extractor reads the session's handshake
	// request (its Authorization header, cookie... as that hub is
	// configured). Default: the payload's "token" member, as
	// socket.io-client's auth: {token}; a "token" that is not a string is
	// passed on as it is, for the hub to refuse.
	AuthToken func(payload json.RawMessage) string
	// ConnectEvent, when set, names a hub event that receives the
	// CONNECT's auth payload ({} when absent) as its data once the
	// namespace is joined, as if the client had sent it without an ack
	// id, so that a handler can use what the client put there besides
	// its token (the token is included: log no more of it than of any
	// input). Socket.IO clients cannot send the reserved event names
	// ("connect", ...), so one of those cannot be forged by them. Default
	// "": none.
	ConnectEvent string

	// Origins checks the Origin of every request — the handshake that
	// opens a session and each later polling request or upgrade that
	// carries its id alike — refusing others with 403 and its security
	// log line. Browsers send no Origin on a same-origin GET (a page's
	// long-polling): a request without one whose Sec-Fetch-Site says
	// "same-origin" is checked as coming from its own scheme://Host; any
	// other request without an Origin is refused unless Origins allows
	// missing ones. Default: only pages served from a loopback address
	// (http://localhost:PORT, http://127.0.0.1:PORT, http://[::1]:PORT),
	// and no request without an Origin, as the hub's default.
	Origins *guard.Origins
	// Throttle, when set, meters the requests that open a session (those
	// without a session id) per client IP, as it meters the hub's
	// handshakes: polling requests of an open session are not handshakes.
	// Default: none.
	Throttle *guard.Throttle
	// Limits, when set, counts each session against its per-node limit
	// from its handshake until it ends, whether or not it ever connects to
	// a namespace (503 when full). Its per-user limit applies through the
	// hubs' Admit, on each namespace CONNECT. Default: none (MaxSessions
	// still bounds the sessions).
	Limits *guard.Limits
	// CORS, when set, lets pages of the origins it accepts use long-polling
	// across origins: their requests get Access-Control-Allow-Origin (that
	// origin) and -Credentials, and their preflights an answer. It should
	// accept no origin that Origins refuses (guard.Origins.Allow is the
	// natural choice). Default nil: no CORS headers, so only same-origin
	// pages (and WebSocket clients, which CORS does not govern) connect.
	CORS func(origin string) bool

	// ConnectTimeout closes a session that has not joined a namespace this
	// long after its handshake. Default 45 s, the reference server's.
	ConnectTimeout time.Duration
	// PingInterval and PingTimeout are Engine.IO's heartbeat, announced to
	// clients: a session that does not answer a ping within PingTimeout is
	// closed. Defaults 25 s and 20 s.
	PingInterval, PingTimeout time.Duration
	// UpgradeTimeout bounds an upgrade from polling to WebSocket. Default
	// 10 s.
	UpgradeTimeout time.Duration
	// MaxSessions bounds this server's Engine.IO sessions, connected to a
	// namespace or not (503 beyond). Default 10,000.
	MaxSessions int
	// SendQueueMessages and SendQueueBytes bound what is queued for one
	// session and not yet written, all its namespaces together, in frames
	// (a binary packet is its text and one frame per attachment, queued
	// or refused as one) and bytes. A namespace's hub applies its
	// SlowConsumer policy to what does not fit. Defaults 256 and 1 MiB, as
	// the hub's.
	SendQueueMessages int
	SendQueueBytes    int
	// WriteTimeout bounds each write to a client that does not read.
	// Default 10 s.
	WriteTimeout time.Duration
	// MaxPendingAcks bounds the acknowledgements one session awaits from
	// its client at once (EmitWithAck, all its namespaces together); one
	// more fails with ErrTooManyAcks. Default 16.
	MaxPendingAcks int
	// Cookie, when its Name is set, is set on every handshake so that a
	// load balancer can route a polling session's requests to the node
	// that holds it (see StickyCookie). Default: none.
	Cookie StickyCookie

	// Recovery, when set, enables connection state recovery for every
	// namespace (see Recovery): a socket.io-client created with
	// connectionStateRecovery resumes its session after a reconnect. The
	// hubs' history decides what can be recovered. Default nil: off, and
	// no offset is added to events.
	Recovery *Recovery

	// Logger receives the server's own log lines (protocol errors, origin
	// refusals of the default check); connections log through their
	// hub's logger with the Socket.IO id (the hub's connection id). The
	// Engine.IO session id is a credential and is never logged. Default:
	// discard.
	Logger *slog.Logger
}

// StickyCookie is the cookie a load balancer routes long-polling sessions
// by. Every polling request of a session is a separate HTTP request that
// only the node holding the session can serve; WebSocket sessions need no
// stickiness once open (every room reaches every node through the hubs'
// broker). Set Name and a Value naming this node, and route on the cookie.
// Browsers send it on same-origin requests, and across origins when the
// client sets withCredentials (and CORS allows the page).
type StickyCookie struct {
	// Name of the cookie; empty disables it.
	Name string
	// Value identifies this node; required with Name.
	Value string
	// Path of the cookie. Default "/".
	Path string
	// Secure marks the cookie Secure; it is also Secure whenever the
	// handshake came over TLS.
	Secure bool
	// MaxAge in seconds; zero makes a session cookie.
	MaxAge int
}

// Defaults of Options.
const (
	DefaultConnectTimeout = 45 * time.Second
	DefaultJoinEvent      = "join"
	DefaultLeaveEvent     = "leave"
	DefaultErrorEvent     = "error"
	DefaultMaxPendingAcks = 16
	// DefaultNestJSErrorEvent is ErrorEvent's default in NestJS mode.
	DefaultNestJSErrorEvent = "exception"
)

// maxNamespace is the longest namespace, as the decoder allows.
const maxNamespace = sio.DefaultMaxNamespace

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if len(o.Namespaces) == 0 {
		return o, errors.New("socketio: Options.Namespaces is empty; map at least one namespace to a hub")
	}
	for nsp, h := range o.Namespaces {
		if err := checkNamespace(nsp); err != nil {
			return o, err
		}
		if h == nil {
			return o, fmt.Errorf("socketio: namespace %q has a nil hub", nsp)
		}
	}
	if o.Mode > NestJS {
		return o, fmt.Errorf("socketio: unknown %v", o.Mode)
	}
	if o.ConnectTimeout < 0 {
		return o, errors.New("socketio: Options.ConnectTimeout is negative")
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxPendingAcks < 0 {
		return o, errors.New("socketio: Options.MaxPendingAcks is negative")
	}
	if o.MaxPendingAcks == 0 {
		o.MaxPendingAcks = DefaultMaxPendingAcks
	}
	o.JoinEvent = cmp.Or(o.JoinEvent, DefaultJoinEvent)
	o.LeaveEvent = cmp.Or(o.LeaveEvent, DefaultLeaveEvent)
	if o.Mode == NestJS {
		o.ErrorEvent = cmp.Or(o.ErrorEvent, DefaultNestJSErrorEvent)
	}
	o.ErrorEvent = cmp.Or(o.ErrorEvent, DefaultErrorEvent)
	for name, ev := range map[string]string{"JoinEvent": o.JoinEvent, "LeaveEvent": o.LeaveEvent, "ErrorEvent": o.ErrorEvent} {
		if sio.IsReserved(ev) || len(ev) > sio.DefaultMaxEventName || !utf8.ValidString(ev) {
			return o, fmt.Errorf("socketio: Options.%s %q cannot name a Socket.IO event", name, ev)
		}
	}
	if o.JoinEvent == o.LeaveEvent {
		return o, errors.New("socketio: JoinEvent and LeaveEvent are the same event")
	}
	if o.AuthToken == nil {
		o.AuthToken = tokenMember
	}
	rc, err := o.Recovery.withDefaults()
	if err != nil {
		return o, err
	}
	o.Recovery = rc
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// checkNamespace refuses a name no client could connect to.
func checkNamespace(nsp string) error {
	switch {
	case !strings.HasPrefix(nsp, "/"):
		return fmt.Errorf("socketio: namespace %q does not start with /", nsp)
	case strings.IndexByte(nsp, ',') >= 0:
		return fmt.Errorf("socketio: namespace %q holds a comma", nsp)
	case len(nsp) > maxNamespace || !utf8.ValidString(nsp):
		return fmt.Errorf("socketio: namespace %q is longer than %d bytes or not UTF-8", nsp, maxNamespace)
	}
	return nil
}

// tokenMember is AuthToken's default: the payload's "token" member. A
// token of another JSON type is returned as its JSON text, which no
// authenticator accepts: a malformed credential is refused rather than
// skipped for the request's.
func tokenMember(payload json.RawMessage) string {
	if len(payload) == 0 {
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(payload, &fields) != nil {
		return ""
	}
	raw, ok := fields["token"]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
