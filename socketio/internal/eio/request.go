package eio

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrorCode is an Engine.IO HTTP error code, sent in the body
// {"code":N,"message":"..."} of a refused request.
type ErrorCode int

// Error codes of the reference server, with the message it sends for each.
const (
	CodeUnknownTransport    ErrorCode = 0 // "Transport unknown"
	CodeUnknownSID          ErrorCode = 1 // "Session ID unknown"
	CodeBadHandshakeMethod  ErrorCode = 2 // "Bad handshake method"
	CodeBadRequest          ErrorCode = 3 // "Bad request"
	CodeForbidden           ErrorCode = 4 // "Forbidden"
	CodeUnsupportedProtocol ErrorCode = 5 // "Unsupported protocol version"
	maxCode                           = CodeUnsupportedProtocol
)

var codeMessages = [...]string{
	"Transport unknown",
	"Session ID unknown",
	"Bad handshake method",
	"Bad request",
	"Forbidden",
	"Unsupported protocol version",
}

// Message returns the reference server's message for c.
func (c ErrorCode) Message() string {
	if c >= 0 && c <= maxCode {
		return codeMessages[c]
	}
	return codeMessages[CodeBadRequest]
}

// Status returns the HTTP status of c: 403 for CodeForbidden, 400 for the
// others, as the reference server answers.
func (c ErrorCode) Status() int {
	if c == CodeForbidden {
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// Error implements error, so that a refused request can travel as an error
// value; the text is the code's message.
func (c ErrorCode) Error() string { return "engine.io: " + c.Message() }

// AppendErrorBody appends the JSON body of a refusal with code c.
func AppendErrorBody(dst []byte, c ErrorCode) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(c), 10)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, c.Message())
	return append(dst, '}')
}

// WriteError answers a refused request with c's status and JSON body.
func WriteError(w http.ResponseWriter, c ErrorCode) {
	body := AppendErrorBody(make([]byte, 0, 64), c)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(c.Status())
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
}

// Transport is an Engine.IO transport.
type Transport uint8

// Transports served. WebTransport is not.
const (
	Polling Transport = iota + 1
	WebSocket
)

// String returns the transport's query parameter value.
func (t Transport) String() string {
	switch t {
	case Polling:
		return "polling"
	case WebSocket:
		return "websocket"
	}
	return "unknown"
}

// Query is what an Engine.IO request says in its method and query string.
type Query struct {
	Transport Transport
	// SID is the session id, empty on a handshake.
	SID string
	// EIO4 reports whether the request asks for protocol version 4.
	EIO4 bool
	// Base64 is set when the client asked for binary packets in base64
	// (b64 query parameter): it cannot receive binary frames.
	Base64 bool
	// Upgrade reports a WebSocket upgrade request.
	Upgrade bool
}

// ParseQuery checks an Engine.IO request in the reference server's order
// and returns the code to refuse it with, if any:
//
//   - an unknown or missing transport: CodeUnknownTransport;
//   - with a sid: nothing more here. The caller then looks the session up
//     (CodeUnknownSID when absent) and refuses with CodeBadRequest a
//     request whose EIO is not 4 or whose transport differs from the
//     session's without being a WebSocket upgrade;
//   - without a sid (a handshake): a method other than GET:
//     CodeBadHandshakeMethod; transport=websocket without upgrade headers:
//     CodeBadRequest; an EIO other than 4: CodeUnsupportedProtocol.
//
// The origin and credential checks come between the last two, as in the
// reference server's allowRequest, and answer with wsgate's own statuses.
func ParseQuery(r *http.Request) (Query, error) {
	v := r.URL.Query()
	q := Query{
		SID:     sessionID(v),
		EIO4:    v.Get("EIO") == "4",
		Base64:  v.Has("b64"),
		Upgrade: isWebSocketUpgrade(r),
	}
	switch v.Get("transport") {
	case "polling":
		q.Transport = Polling
	case "websocket":
		q.Transport = WebSocket
	default:
		return q, CodeUnknownTransport
	}
	if q.SID != "" {
		return q, nil
	}
	if r.Method != http.MethodGet {
		return q, CodeBadHandshakeMethod
	}
	if q.Transport == WebSocket && !q.Upgrade {
		return q, CodeBadRequest
	}
	if !q.EIO4 {
		return q, CodeUnsupportedProtocol
	}
	return q, nil
}

// SessionID returns the session id r carries, "" for a handshake: the
// request ParseQuery takes for one.
func SessionID(r *http.Request) string { return sessionID(r.URL.Query()) }

func sessionID(v url.Values) string { return v.Get("sid") }

// isWebSocketUpgrade reports whether r asks to switch to the WebSocket
// protocol.
func isWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}
