package hub

import (
	"errors"
	"fmt"

	wsproto "github.com/wsgate/wsgate/protocol"
)

// Error codes sent to clients in error frames (docs/PROTOCOL.md); the same
// values as package protocol's, which clients use.
const (
	CodeInvalidMessage    = wsproto.CodeInvalidMessage
	CodeUnknownEvent      = wsproto.CodeUnknownEvent
	CodeMessageTooLarge   = wsproto.CodeMessageTooLarge
	CodeRateLimited       = wsproto.CodeRateLimited
	CodeForbidden         = wsproto.CodeForbidden
	CodeRoomLimitExceeded = wsproto.CodeRoomLimitExceeded
	CodeUnauthorized      = wsproto.CodeUnauthorized
	CodeTokenExpired      = wsproto.CodeTokenExpired
	CodeTimeout           = wsproto.CodeTimeout
	CodeInternal          = wsproto.CodeInternal
)

// Close codes the hub sends; package protocol documents which a client
// should reconnect after.
const (
	// CloseUnauthorized: no valid credential (first-message auth failed or
	// timed out), or the server logged the user out. Reconnect only with a
	// new credential.
	CloseUnauthorized = wsproto.CloseUnauthorized
	// CloseIdle: the connection sent nothing for Options.IdleTimeout.
	CloseIdle = wsproto.CloseIdle
	// CloseTokenExpired: the credential expired and was not refreshed.
	// Reconnect with a fresh token.
	CloseTokenExpired = wsproto.CloseTokenExpired
	// CloseSlowConsumer: the send queue overflowed. Reconnect with backoff.
	CloseSlowConsumer = wsproto.CloseSlowConsumer
	// CloseConnectionLimit: the user holds too many connections.
	CloseConnectionLimit = wsproto.CloseConnectionLimit
	// CloseServiceRestart: the node is shutting down; reconnect, to another
	// node.
	CloseServiceRestart = wsproto.CloseServiceRestart
	// CloseInternalError: the server failed; reconnect with backoff.
	CloseInternalError = wsproto.CloseInternalError
	// CloseTryAgainLater: the server is overloaded by this connection's
	// handlers; reconnect with backoff.
	CloseTryAgainLater = wsproto.CloseTryAgainLater
)

// Error is an error a handler returns to send a specific code to the client.
// Any other error returned by a handler reaches the client as INTERNAL with a
// generic message; its text goes only to the log.
type Error struct {
	Code    string
	Message string // sent to the client as is: keep internals out of it
	// Cause is logged with the message's correlation ids, never sent.
	Cause error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Message + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns Cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Cause }

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
