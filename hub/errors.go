package hub

import (
	"errors"
	"fmt"

	"github.com/coder/websocket"
)

// Error codes sent to clients in error frames (docs/PROTOCOL.md).
const (
	CodeInvalidMessage    = "INVALID_MESSAGE"
	CodeUnknownEvent      = "UNKNOWN_EVENT"
	CodeMessageTooLarge   = "MESSAGE_TOO_LARGE"
	CodeRateLimited       = "RATE_LIMITED"
	CodeForbidden         = "FORBIDDEN"
	CodeRoomLimitExceeded = "ROOM_LIMIT_EXCEEDED"
	CodeUnauthorized      = "UNAUTHORIZED"
	CodeTokenExpired      = "TOKEN_EXPIRED"
	CodeTimeout           = "TIMEOUT"
	CodeInternal          = "INTERNAL"
)

// Close codes wsgate uses beyond the RFC 6455 ones (docs/PROTOCOL.md says
// which a client should reconnect after).
const (
	// CloseUnauthorized: no valid credential (first-message auth failed or
	// timed out). Reconnect only with a new credential.
	CloseUnauthorized websocket.StatusCode = 4001
	// CloseIdle: the connection sent nothing for Options.IdleTimeout.
	CloseIdle websocket.StatusCode = 4002
	// CloseTokenExpired: the credential expired and was not refreshed.
	// Reconnect with a fresh token.
	CloseTokenExpired websocket.StatusCode = 4003
	// CloseSlowConsumer: the send queue overflowed. Reconnect with backoff.
	CloseSlowConsumer websocket.StatusCode = 4008
	// CloseConnectionLimit: the user holds too many connections.
	CloseConnectionLimit websocket.StatusCode = 4029
)

// Error is an error a handler returns to send a specific code to the client.
// Any other error returned by a handler reaches the client as INTERNAL with a
// generic message; its text goes only to the log.
type Error struct {
	Code    string
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with code and a formatted, client-visible message.
// The message is sent to the client as is: keep internals out of it.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

var (
	// ErrShuttingDown is returned by operations on a hub after Shutdown.
	ErrShuttingDown = errors.New("hub: shutting down")
	// ErrNotSubscribed is Ready's answer while the hub is not yet subscribed
	// to the topic every node listens on (its broker was unreachable).
	ErrNotSubscribed = errors.New("hub: not subscribed to the broker")
	// ErrUnknownConnection is returned for a connection id that is not on
	// this node.
	ErrUnknownConnection = errors.New("hub: unknown connection")
)
