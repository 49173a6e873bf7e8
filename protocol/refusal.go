package protocol

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Refusal is the answer to a request refused before the WebSocket upgrade:
// an HTTP status and the small JSON body {"code": ..., "message": ...}
// that every wsgate refusal has, so clients parse one shape. It is an
// error, so admission checks (such as hub.Options.Admit) return it to
// choose their answer.
type Refusal struct {
	// Status is the HTTP status, e.g. 429. Zero means 403.
	Status int
	// Code is one of the Code constants, e.g. CodeConnectionLimit. Metrics
	// count refusals by it. Empty means CodeForbidden.
	Code string
	// Message is shown to the client: keep internals out of it.
	Message string
	// RetryAfter, when positive, becomes a Retry-After header, rounded up
	// to whole seconds.
	RetryAfter time.Duration
	// Err is the cause callers branch on with errors.Is, for example
	// guard.ErrUserLimit. It is never sent. Optional.
	Err error
}

// Error returns the client-safe code and message.
func (r *Refusal) Error() string {
	return r.code() + ": " + r.Message
}

// Unwrap returns Err.
func (r *Refusal) Unwrap() error { return r.Err }

func (r *Refusal) code() string {
	if r.Code == "" {
		return CodeForbidden
	}
	return r.Code
}

func (r *Refusal) status() int {
	if r.Status == 0 {
		return http.StatusForbidden
	}
	return r.Status
}

type refusalBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Write answers the request with the refusal: its status, the JSON body,
// Content-Type application/json, Cache-Control no-store (a refusal is
// about this attempt only), X-Content-Type-Options nosniff and, when
// RetryAfter is positive, Retry-After.
func (r *Refusal) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.RetryAfter > 0 {
		secs := int64(math.Ceil(r.RetryAfter.Seconds()))
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(r.status())
	b, _ := json.Marshal(refusalBody{Code: r.code(), Message: r.Message}) // strings only: cannot fail
	_, _ = w.Write(append(b, '\n'))
}
