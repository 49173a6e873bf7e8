package protocol

import "strconv"

// CloseCode is the status code of a WebSocket close frame (RFC 6455,
// section 7.4). Codes from 4000 to 4999 are wsgate's own.
//
// Each constant says whether a client should reconnect after it; the Go
// client (package client) and the browser client (package web) follow
// that policy.
type CloseCode uint16

// Close codes wsgate sends or reports.
const (
	// CloseNormal: the client or the server closed normally. Reconnect as
	// the application wishes.
	CloseNormal CloseCode = 1000
	// CloseGoingAway: the peer is going away (a page closed). Reconnect with
	// backoff.
	CloseGoingAway CloseCode = 1001
	// CloseProtocolError: the client sent a frame RFC 6455 forbids
	// (unmasked, reserved bits, a malformed close frame...). Do not
	// reconnect: it is a client bug.
	CloseProtocolError CloseCode = 1002
	// CloseUnsupportedData: the client sent a binary frame. Do not
	// reconnect: it is a client bug.
	CloseUnsupportedData CloseCode = 1003
	// CloseAbnormal is never sent: it reports a connection that ended
	// without a close frame (network loss, heartbeat timeout). Reconnect
	// with backoff.
	CloseAbnormal CloseCode = 1006
	// CloseInvalidPayload: a text frame was not valid UTF-8. Do not
	// reconnect: it is a client bug.
	CloseInvalidPayload CloseCode = 1007
	// ClosePolicyViolation: rate-limit abuse, a flood of control frames or
	// fragments. Reconnect
	// after at least 10 seconds plus backoff.
	ClosePolicyViolation CloseCode = 1008
	// CloseMessageTooBig: a message exceeded the server's size limit, after
	// decompression. Do not reconnect: it is a client bug.
	CloseMessageTooBig CloseCode = 1009
	// CloseInternalError: the server could not set the connection up.
	// Reconnect with backoff.
	CloseInternalError CloseCode = 1011
	// CloseServiceRestart: graceful shutdown (a "bye" with reason "shutdown"
	// comes first). Reconnect at once, with jitter: another node takes it.
	CloseServiceRestart CloseCode = 1012
	// CloseTryAgainLater: the connection's handlers are stuck. Reconnect
	// with backoff.
	CloseTryAgainLater CloseCode = 1013

	// CloseUnauthorized: first-message authentication failed or timed out,
	// or the server disconnected the user (the "bye" says why, e.g.
	// "logout"). Reconnect only with a new credential; after a server-side
	// disconnect of an established connection, not at all.
	CloseUnauthorized CloseCode = 4001
	// CloseIdle: the connection sent nothing for the server's idle timeout.
	// Reconnect when the application next needs the connection.
	CloseIdle CloseCode = 4002
	// CloseTokenExpired: the credential expired and was not refreshed
	// in-band. Reconnect with a fresh token.
	CloseTokenExpired CloseCode = 4003
	// CloseSlowConsumer: the client did not read fast enough and its send
	// queue overflowed. Reconnect with backoff and resynchronise: events
	// were lost.
	CloseSlowConsumer CloseCode = 4008
	// CloseConnectionLimit: with first-message authentication, the user
	// already holds the maximum number of connections. Reconnect after a
	// while (30 seconds plus backoff).
	CloseConnectionLimit CloseCode = 4029
)

var closeNames = map[CloseCode]string{
	CloseNormal:          "normal",
	CloseGoingAway:       "going away",
	CloseProtocolError:   "protocol error",
	CloseUnsupportedData: "unsupported data",
	CloseAbnormal:        "abnormal closure",
	CloseInvalidPayload:  "invalid payload",
	ClosePolicyViolation: "policy violation",
	CloseMessageTooBig:   "message too big",
	CloseInternalError:   "internal error",
	CloseServiceRestart:  "service restart",
	CloseTryAgainLater:   "try again later",
	CloseUnauthorized:    "unauthorized",
	CloseIdle:            "idle",
	CloseTokenExpired:    "token expired",
	CloseSlowConsumer:    "slow consumer",
	CloseConnectionLimit: "connection limit",
}

// String returns the code's name as docs/PROTOCOL.md lists it, followed by
// the number, e.g. "token expired (4003)"; an unknown code is its number.
func (c CloseCode) String() string {
	n := strconv.Itoa(int(c))
	if name, ok := closeNames[c]; ok {
		return name + " (" + n + ")"
	}
	return n
}
