package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Source says where a token came from, for logs and metrics. The zero value
// means no source.
type Source uint8

// Token sources, in the order Extractor.Extract tries them. SourceMessage is
// never returned by Extract: the hub uses it for a token sent in the first
// message or in an in-band refresh.
const (
	SourceHeader Source = iota + 1
	SourceSubprotocol
	SourceCookie
	SourceQuery
	SourceMessage
)

// String returns a short lower-case name, suitable as a log attribute or a
// metrics label: "header", "subprotocol", "cookie", "query", "message", or
// "none" for the zero value.
func (s Source) String() string {
	switch s {
	case SourceHeader:
		return "header"
	case SourceSubprotocol:
		return "subprotocol"
	case SourceCookie:
		return "cookie"
	case SourceQuery:
		return "query"
	case SourceMessage:
		return "message"
	case 0:
		return "none"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// SubprotocolPrefix marks the Sec-WebSocket-Protocol entry that carries a
// bearer token. Browsers cannot set headers on a WebSocket handshake, so they
// offer the token as a pseudo-subprotocol next to the real one:
//
//	new WebSocket(url, ["wsgate.v1", "wsgate.bearer." + jwt])
//
// The server must select "wsgate.v1", never echo the bearer entry.
const SubprotocolPrefix = "wsgate.bearer."

// Extractor finds the bearer token of a WebSocket upgrade request. Its zero
// value reads the Authorization header and the subprotocol entry only; the
// cookie and query sources are opt-in because each needs a precaution.
type Extractor struct {
	// DisableHeader turns off "Authorization: Bearer <token>". Default: on.
	// Authorization headers with another scheme (such as Basic credentials a
	// browser replays for a proxy) are ignored, not refused.
	DisableHeader bool

	// DisableSubprotocol turns off the Sec-WebSocket-Protocol entry
	// SubprotocolPrefix+token. Default: on.
	DisableSubprotocol bool

	// Cookie names the cookie holding the token. Default "": off. Browsers
	// attach cookies to cross-site WebSocket handshakes (there is no CORS
	// preflight), so enable this only behind an origin allowlist, or any
	// page the user visits can open an authenticated connection.
	Cookie string

	// QueryParam names the query parameter holding the token. Default "":
	// off. URLs end up in access logs, proxy logs and browser history, so
	// prefer the subprotocol; if you enable this, log URLs with RedactURL.
	QueryParam string
}

// Extract returns the request's token and where it came from, trying the
// header, the subprotocol, the cookie and the query parameter in that order;
// the first source present wins. It returns ErrNoToken when no enabled
// source carries a token, and an error wrapping ErrInvalidToken (with the
// offending source) when a source is present but malformed or ambiguous: a
// malformed credential is refused rather than skipped for a later source.
// Extract only finds the token; an Authenticator verifies it.
func (e Extractor) Extract(r *http.Request) (token string, src Source, err error) {
	type finder struct {
		off  bool
		src  Source
		find func(*http.Request) (string, error)
	}
	finders := [...]finder{
		{e.DisableHeader, SourceHeader, fromHeader},
		{e.DisableSubprotocol, SourceSubprotocol, fromSubprotocol},
		{e.Cookie == "", SourceCookie, e.fromCookie},
		{e.QueryParam == "", SourceQuery, e.fromQuery},
	}
	for _, f := range finders {
		if f.off {
			continue
		}
		token, err := f.find(r)
		if err != nil {
			return "", f.src, fmt.Errorf("%w: %s: %w", ErrInvalidToken, f.src, err)
		}
		if token != "" {
			return token, f.src, nil
		}
	}
	return "", 0, ErrNoToken
}

// Reasons an otherwise present token is refused by Extract. They describe
// the shape of the input, never its content.
var (
	errMalformed = errors.New("malformed token")
	errAmbiguous = errors.New("more than one token")
)

func fromHeader(r *http.Request) (string, error) {
	var token string
	for _, v := range r.Header.Values("Authorization") {
		fields := strings.Fields(v)
		if len(fields) == 0 || !strings.EqualFold(fields[0], "Bearer") {
			continue
		}
		if len(fields) != 2 || !tokenShaped(fields[1]) {
			return "", errMalformed
		}
		if token != "" {
			return "", errAmbiguous
		}
		token = fields[1]
	}
	return token, nil
}

func fromSubprotocol(r *http.Request) (string, error) {
	var token string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for entry := range strings.SplitSeq(v, ",") {
			t, ok := strings.CutPrefix(strings.TrimSpace(entry), SubprotocolPrefix)
			if !ok {
				continue
			}
			if !tokenShaped(t) {
				return "", errMalformed
			}
			if token != "" {
				return "", errAmbiguous
			}
			token = t
		}
	}
	return token, nil
}

// fromCookie refuses two different values under the same name: a sibling
// subdomain can plant ("toss") a cookie, and picking either one silently
// would let it choose whose identity the connection gets.
func (e Extractor) fromCookie(r *http.Request) (string, error) {
	var token string
	for _, c := range r.CookiesNamed(e.Cookie) {
		if c.Value == "" {
			continue
		}
		if !tokenShaped(c.Value) {
			return "", errMalformed
		}
		if token != "" && token != c.Value {
			return "", errAmbiguous
		}
		token = c.Value
	}
	return token, nil
}

func (e Extractor) fromQuery(r *http.Request) (string, error) {
	var token string
	for _, v := range r.URL.Query()[e.QueryParam] {
		if v == "" {
			continue
		}
		if !tokenShaped(v) {
			return "", errMalformed
		}
		if token != "" {
			return "", errAmbiguous
		}
		token = v
	}
	return token, nil
}

// tokenShaped reports whether s has the token68 syntax of RFC 7235 (which
// covers JWTs and other bearer tokens): no spaces, quotes, commas or control
// characters that could smuggle something past a later parser or a log line.
func tokenShaped(s string) bool {
	if s == "" {
		return false
	}
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// RedactedValue replaces secrets in the output of RedactURL.
const RedactedValue = "REDACTED"

// RedactURL returns u as a string fit for logs: every value of the query
// parameter param becomes RedactedValue, and a password in the user info is
// masked as url.URL.Redacted does. The other parameters keep their order and
// encoding. Both "&" and ";" count as separators, because some proxies split
// on either; a token hidden behind one must not slip into a log.
func RedactURL(u *url.URL, param string) string {
	if u == nil {
		return ""
	}
	c := *u
	if param != "" && c.RawQuery != "" {
		c.RawQuery = redactQuery(c.RawQuery, param)
	}
	return c.Redacted()
}

func redactQuery(raw, param string) string {
	var b strings.Builder
	b.Grow(len(raw))
	for raw != "" {
		i := strings.IndexAny(raw, "&;")
		part, sep := raw, ""
		if i >= 0 {
			part, sep, raw = raw[:i], raw[i:i+1], raw[i+1:]
		} else {
			raw = ""
		}
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); (err == nil && k == param) || key == param {
			part = key + "=" + RedactedValue
		}
		b.WriteString(part)
		b.WriteString(sep)
	}
	return b.String()
}
