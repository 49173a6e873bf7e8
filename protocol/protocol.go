package protocol

// Subprotocol is the Sec-WebSocket-Protocol value a client must offer and
// the server selects.
const Subprotocol = "wsgate.v1"

// BearerPrefix starts the extra Sec-WebSocket-Protocol entry that carries a
// bearer token ("wsgate.bearer.<jwt>"), the one way a browser can send a
// credential with the handshake. The server never selects or echoes it.
const BearerPrefix = "wsgate.bearer."

// MaxID is the largest message id: 2^53-1, the largest integer a
// JavaScript peer represents exactly.
const MaxID = 1<<53 - 1

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
