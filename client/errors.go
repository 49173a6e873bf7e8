package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

var (
	// ErrClosed is returned by every method once the client has stopped:
	// after Close, or after a close code or refusal that forbids
	// reconnecting (the error then also wraps that cause).
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected is returned when ctx ended (or the ack timeout passed)
	// while the client was waiting for a connection: nothing was sent.
	ErrNotConnected = errors.New("client: not connected")
	// ErrDisconnected is returned when the connection dropped after the
	// message was written and before its answer came. The message is not
	// replayed on the next connection; the server may or may not have
	// handled it.
	ErrDisconnected = errors.New("client: connection lost before the answer")
	// ErrTimeout matches a call that got no answer within Options.AckTimeout,
	// and, through ServerError.Is, a TIMEOUT error frame (the server's
	// handler deadline). In both cases the outcome on the server is unknown.
	ErrTimeout = errors.New("client: timed out waiting for the answer")
	// ErrMaxAttempts ends the client when Options.MaxAttempts reconnect
	// attempts in a row failed.
	ErrMaxAttempts = errors.New("client: reconnect attempts exhausted")
	// ErrSlowConsumer ends a connection whose events the application did not
	// consume fast enough (Options.EventQueue overflowed); the client closes
	// it with 4008 and reconnects, like the server does to a slow client.
	// Events were lost: resynchronise.
	ErrSlowConsumer = errors.New("client: event queue overflowed")
	// ErrHeartbeatTimeout ends a connection on which the server sent nothing,
	// not even a ping, for twice its announced heartbeat interval (at least
	// 5 s): a dead path that TCP alone may take minutes to notice.
	ErrHeartbeatTimeout = errors.New("client: no traffic from the server")
	// ErrLoggedOut ends a client whose established connection the server
	// closed with protocol.CloseUnauthorized: the server disconnected the
	// user (hub.DisconnectUser, e.g. at logout or when access was
	// revoked). The client does not reconnect, not even with a fresh token:
	// the application decides whether to sign in again. The error says the
	// reason the server gave in its "bye".
	ErrLoggedOut = errors.New("client: logged out by the server")
	// ErrProtocol reports a server that does not speak wsgate.v1: it did not
	// select the subprotocol, or what it sent before the welcome was not
	// JSON envelopes, or the welcome was malformed. The client does not
	// reconnect to it.
	ErrProtocol = errors.New("client: protocol violation")
)

// ServerError is an error frame answering one of this client's messages, or
// (through Options.OnError) one answering nothing in particular. Message is
// generic: details stay in the server's log.
type ServerError struct {
	// Code is one of the protocol.Code constants, e.g.
	// protocol.CodeForbidden.
	Code string
	// Message is the server's client-safe text.
	Message string
}

// Error implements error.
func (e *ServerError) Error() string { return "client: server error " + e.Code + ": " + e.Message }

// Is makes errors.Is(err, ErrTimeout) true for a TIMEOUT error frame, so
// that one check covers the server's handler deadline and the local ack
// timeout.
func (e *ServerError) Is(target error) bool {
	return target == ErrTimeout && e.Code == protocol.CodeTimeout
}

// HandshakeError is a refusal before the upgrade: the server answered the
// handshake with an HTTP status and a JSON body {"code", "message"}.
type HandshakeError struct {
	// Status is the HTTP status: 400, 401, 403, 429, 503...
	Status int
	// Code is the body's code, e.g. protocol.CodeForbidden or
	// protocol.CodeConnectionLimit; empty if the body was not wsgate's.
	Code string
	// Message is the body's client-safe message.
	Message string
	// RetryAfter is the Retry-After header, 0 when absent.
	RetryAfter time.Duration
}

// Error implements error.
func (e *HandshakeError) Error() string {
	s := "client: handshake refused: " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// handshakeError reads the refusal from resp; coder/websocket keeps the
// first KiB of the body, more than the JSON refusal needs.
func handshakeError(resp *http.Response) *HandshakeError {
	e := &HandshakeError{Status: resp.StatusCode}
	if resp.Body != nil {
		var body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if json.Unmarshal(b, &body) == nil {
			e.Code, e.Message = body.Code, body.Message
		}
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(min(secs, 3600)) * time.Second
	}
	return e
}

// errUnsent reports a connection that was over before the message was
// written: the message can wait for the next connection.
var errUnsent = errors.New("client: connection over before sending")

// disconnected wraps the reason a connection ended for a call that was
// waiting on it.
func disconnected(cause error) error {
	if cause == nil {
		return ErrDisconnected
	}
	if errors.Is(cause, ErrClosed) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrDisconnected, cause)
}
