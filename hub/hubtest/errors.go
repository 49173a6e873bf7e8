package hubtest

import (
	"errors"

	"github.com/wsgate/wsgate/protocol"
)

// ErrClosed is returned by a Conn's methods once the connection is over:
// after Close, or after the hub closed it (the error is then a *CloseError,
// which matches ErrClosed with errors.Is).
var ErrClosed = errors.New("hubtest: connection closed")

// Error is an error frame the hub answered a message with: its refusal
// (INVALID_MESSAGE, UNKNOWN_EVENT, RATE_LIMITED, FORBIDDEN, TIMEOUT...) or
// what a handler returned — an *hub.Error's code and message, INTERNAL and
// a generic message for any other error, exactly as a client gets it.
type Error struct {
	// Code is one of the hub.Code constants, e.g. hub.CodeForbidden.
	Code string
	// Message is the client-safe text the hub sent.
	Message string
}

// Error implements error.
func (e *Error) Error() string { return "hubtest: " + e.Code + ": " + e.Message }

// Code returns the code of the *Error in err's chain, or "" when there is
// none (err is nil, or failed for another reason):
//
//	if got := hubtest.Code(err); got != hub.CodeForbidden { ... }
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// CloseError is how the hub closed a connection: its close code and reason,
// and the reason of the "bye" that preceded the close, when one did.
type CloseError struct {
	// Code is the close code, e.g. protocol.CloseUnauthorized after
	// Hub.DisconnectUser, protocol.CloseServiceRestart after Shutdown;
	// protocol.CloseAbnormal when the hub dropped the connection without a
	// close (Shutdown's deadline passed).
	Code protocol.CloseCode
	// Reason is the close frame's reason.
	Reason string
	// Bye is the reason of the "bye" sent before the close ("logout",
	// "shutdown"...), "" when none was.
	Bye string
}

// Error implements error.
func (e *CloseError) Error() string {
	s := "hubtest: closed by the hub with " + e.Code.String()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Bye != "" {
		s += " (bye: " + e.Bye + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrClosed) true for a connection the hub closed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }
