package protocol

// Subprotocol is the Sec-WebSocket-Protocol value a client must offer and
// the server selects.
const Subprotocol = "wsgate.v1"

// BearerPrefix starts the extra Sec-WebSocket-Protocol entry that carries a
// bearer token ("wsgate.bearer.<jwt>"), the one way a browser can send a
// credential with the handshake. The server never selects or echoes it.
const BearerPrefix = "wsgate.bearer."

// Limits of envelope fields. A server refuses a message over them with
// CodeInvalidMessage; the data payload is bounded by the server's message
// size limit instead.
const (
	// MaxID is the largest message id: 2^53-1, the largest integer a
	// JavaScript peer represents exactly.
	MaxID = 1<<53 - 1
	// MaxEventLen is the longest event name, in bytes (see ValidEvent).
	MaxEventLen = 64
	// MaxRoomLen is the longest room name, in bytes.
	MaxRoomLen = 128
	// MaxTokenLen is the longest credential an auth message may carry.
	MaxTokenLen = 16 << 10
)

// ValidEvent reports whether name can name an event on the wire: 1 to
// MaxEventLen characters of A-Z a-z 0-9 : . _ -.
func ValidEvent(name string) bool {
	if name == "" || len(name) > MaxEventLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':' || c == '.' || c == '_' || c == '-':
		default:
			return false
		}
	}
	return true
}

// Envelope types. A client sends TypeEvent, TypeJoin, TypeLeave and
// TypeAuth; a server sends TypeWelcome, TypeEvent, TypeAck, TypeError and
// TypeBye.
const (
	TypeEvent   = "event"
	TypeJoin    = "join"
	TypeLeave   = "leave"
	TypeAuth    = "auth"
	TypeWelcome = "welcome"
	TypeAck     = "ack"
	TypeError   = "error"
	TypeBye     = "bye"
)

// Error codes of error frames. An error frame means nothing happened on the
// server, except after CodeTimeout and CodeInternal, where the outcome is
// unknown.
const (
	// CodeInvalidMessage: not an envelope, an unknown field, an invalid
	// name, or data that fails the event's schema.
	CodeInvalidMessage = "INVALID_MESSAGE"
	// CodeUnknownEvent: no handler is registered for the event.
	CodeUnknownEvent = "UNKNOWN_EVENT"
	// CodeMessageTooLarge is reserved: an oversized message closes the
	// connection with CloseMessageTooBig instead.
	CodeMessageTooLarge = "MESSAGE_TOO_LARGE"
	// CodeRateLimited: the connection exceeded a rate limit. Also the code
	// of the handshake throttle's 429.
	CodeRateLimited = "RATE_LIMITED"
	// CodeForbidden: the room policy or a handler refused. Also the code of
	// the 403 answering a refused origin.
	CodeForbidden = "FORBIDDEN"
	// CodeRoomLimitExceeded: the connection is in the maximum number of
	// rooms.
	CodeRoomLimitExceeded = "ROOM_LIMIT_EXCEEDED"
	// CodeUnauthorized: a missing, invalid or another user's credential.
	// Also the code of the 401 before the upgrade.
	CodeUnauthorized = "UNAUTHORIZED"
	// CodeTokenExpired: the credential expired.
	CodeTokenExpired = "TOKEN_EXPIRED"
	// CodeTimeout: the handler did not finish within its deadline; it may
	// still complete.
	CodeTimeout = "TIMEOUT"
	// CodeInternal: the handler failed or panicked; details are only in the
	// server's log.
	CodeInternal = "INTERNAL"
)

// Codes that only HTTP refusals before the upgrade carry, besides
// CodeUnauthorized, CodeForbidden and CodeRateLimited.
const (
	// CodeConnectionLimit: the user holds the maximum number of
	// connections (429, with Retry-After).
	CodeConnectionLimit = "CONNECTION_LIMIT_EXCEEDED"
	// CodeUnavailable: the node is full, shutting down, or cannot reach a
	// service it needs (503, with Retry-After).
	CodeUnavailable = "UNAVAILABLE"
	// CodeBadRequest: the request is not a wsgate handshake, e.g. it did not
	// offer the Subprotocol (400).
	CodeBadRequest = "BAD_REQUEST"
)

// Room name limits: a name is "kind" or "kind:arg".
const maxKindLen = 32

// ValidRoom reports whether name is a well-formed room name that a client
// may send: "kind" or "kind:arg", at most MaxRoomLen bytes, where kind is
// [a-z][a-z0-9_-]{0,31} and arg is made of A-Z a-z 0-9 . _ ~ @ + - and of
// %XX escapes (two upper-case hexadecimal digits) for any other byte, each
// escape standing for a byte that cannot stand for itself: the spelling
// room.Escape produces, so that "auth0|1" is "user:auth0%7C1". A valid name
// is not yet an allowed one: the server's room policy decides who may join
// it.
func ValidRoom(name string) bool {
	if name == "" || len(name) > MaxRoomLen {
		return false
	}
	kind, arg, hasArg := name, "", false
	for i := 0; i < len(name); i++ {
		if name[i] == ':' {
			kind, arg, hasArg = name[:i], name[i+1:], true
			break
		}
	}
	if kind == "" || len(kind) > maxKindLen || kind[0] < 'a' || kind[0] > 'z' {
		return false
	}
	for i := 1; i < len(kind); i++ {
		if c := kind[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	if !hasArg {
		return true
	}
	if arg == "" {
		return false
	}
	for i := 0; i < len(arg); i++ {
		if plainArgByte(arg[i]) {
			continue
		}
		if arg[i] != '%' || i+2 >= len(arg) {
			return false
		}
		hi, lo := upperHex(arg[i+1]), upperHex(arg[i+2])
		if hi < 0 || lo < 0 || plainArgByte(byte(hi<<4|lo)) {
			return false
		}
		i += 2
	}
	return true
}

// plainArgByte reports whether c may stand for itself in a room argument.
func plainArgByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '.' || c == '_' || c == '~' || c == '@' || c == '+' || c == '-'
}

// upperHex returns the value of an upper-case hexadecimal digit, or -1.
func upperHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
