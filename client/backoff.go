package client

import (
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

// window is the upper bound of attempt n's wait (n from 0):
// min(Max, Min·Multiplier^n).
func (b Backoff) window(n int) time.Duration {
	w := float64(b.Min) * math.Pow(b.Multiplier, float64(n))
	if w >= float64(b.Max) || math.IsInf(w, 0) || math.IsNaN(w) {
		return b.Max
	}
	return time.Duration(w)
}

// delay draws attempt n's full-jitter wait, uniform in [0, window(n)).
// int64n is rand.Int64N in production and a seeded source in tests.
func (b Backoff) delay(n int, int64n func(int64) int64) time.Duration {
	w := b.window(n)
	if w <= 0 {
		return 0
	}
	return time.Duration(int64n(int64(w)))
}

// Minimum waits the protocol asks for after some closes, added to the
// jittered backoff (not replacing it: a floor alone would bring every
// client back at the same instant).
const (
	policyViolationWait = 10 * time.Second // 1008: "at least 10 s"
	connectionLimitWait = 30 * time.Second // 4029: the server's Retry-After for the same limit
)

// verdict is what the client does after a connection ended or an attempt
// failed, per docs/PROTOCOL.md.
type verdict struct {
	stop    bool          // do not reconnect: a client bug, or refused for good
	floor   time.Duration // wait at least this, plus the jittered backoff
	restart bool          // the server asked for an immediate reconnect (1012): restart the backoff sequence
	lazy    bool          // reconnect when the application next needs the connection (4002)
	auth    bool          // the credential was refused: retry once with a different token
}

// judge classifies why a connection ended or an attempt failed.
func judge(err error) verdict {
	var he *HandshakeError
	if errors.As(err, &he) {
		switch he.Status {
		case http.StatusBadRequest, http.StatusForbidden:
			// 400: the client did not speak wsgate.v1; 403: the origin is
			// not allowed. Retrying cannot help.
			return verdict{stop: true}
		case http.StatusUnauthorized:
			return verdict{auth: true}
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return verdict{floor: he.RetryAfter}
		}
		return verdict{}
	}
	if errors.Is(err, ErrProtocol) || errors.Is(err, ErrLoggedOut) {
		return verdict{stop: true}
	}
	switch closeCode(err) {
	case protocol.CloseProtocolError, protocol.CloseUnsupportedData, protocol.CloseInvalidPayload, protocol.CloseMessageTooBig:
		// 1002, 1003, 1007, 1009: this client sent something the server refuses;
		// it would send it again.
		return verdict{stop: true}
	case protocol.ClosePolicyViolation:
		return verdict{floor: policyViolationWait}
	case protocol.CloseServiceRestart:
		return verdict{restart: true}
	case protocol.CloseUnauthorized:
		// Before the welcome: first-message authentication refused the
		// credential. (After it, the connection ended with ErrLoggedOut.)
		return verdict{auth: true}
	case protocol.CloseIdle:
		return verdict{lazy: true}
	case protocol.CloseConnectionLimit:
		return verdict{floor: connectionLimitWait}
	}
	// 1000, 1001, 1011, 1013, 4003 (Token supplies the fresh credential),
	// 4008, network loss, heartbeat timeout, a Token error: back off and
	// try again.
	return verdict{}
}
