// Package reject writes the small JSON body that wsgate answers with when it
// refuses an HTTP request before the WebSocket upgrade.
//
// Every refusal, whether it comes from guard middleware or from the hub, has the
// same shape, so clients parse one format:
//
//	{"code":"RATE_LIMITED","message":"too many connection attempts"}
package reject

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// HTTP refusal codes shared by guard and hub. They are part of the public wire
// contract (docs/PROTOCOL.md).
const (
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeForbidden       = "FORBIDDEN"
	CodeRateLimited     = "RATE_LIMITED"
	CodeConnectionLimit = "CONNECTION_LIMIT_EXCEEDED"
	CodeUnavailable     = "UNAVAILABLE"
	CodeBadRequest      = "BAD_REQUEST"
)

type body struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Write answers the request with status and a JSON body {code, message}. A
// positive retryAfter sets the Retry-After header, rounded up to whole seconds.
func Write(w http.ResponseWriter, status int, code, message string, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if retryAfter > 0 {
		secs := int64(math.Ceil(retryAfter.Seconds()))
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(body{Code: code, Message: message})
	_, _ = w.Write(append(b, '\n'))
}

// Error is a refusal that knows how to answer an HTTP request before the
// upgrade. guard returns it from admission checks; the hub writes it with
// WriteTo, so a limit hit in guard reaches the client with the right status.
type Error struct {
	// Status is the HTTP status, e.g. 429.
	Status int
	// Code is one of the Code constants.
	Code string
	// Message is safe to show to clients: no internals.
	Message string
	// RetryAfter, when positive, becomes a Retry-After header.
	RetryAfter time.Duration
	// Err is the sentinel callers branch on with errors.Is.
	Err error
}

// Error returns the client-safe message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// WriteTo answers the request with the refusal.
func (e *Error) WriteTo(w http.ResponseWriter) {
	Write(w, e.Status, e.Code, e.Message, e.RetryAfter)
}
