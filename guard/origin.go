package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/protocol"
)

// maxOriginLength bounds the work done on a hostile Origin header: a
// serialized origin is a scheme, a host of at most 253 bytes and a port.
const maxOriginLength = 300

// OriginOptions configures NewOrigins. The zero value is invalid on purpose:
// an allowlist with no entries would refuse everything, and there is no
// wildcard default to fall back to.
type OriginOptions struct {
	// Allowed lists the origins that may open a WebSocket. Each entry is
	// either an exact origin, "https://app.example.com" or
	// "http://127.0.0.1:8080", or a subdomain pattern
	// "https://*.example.com", which admits one or more labels in front of
	// ".example.com" with the same scheme and port, but not "example.com"
	// itself. Schemes are http and https; comparison is case-insensitive and
	// a default port (80, 443) may be written or left out. "*", "null",
	// entries with a path (even "/"), query, fragment or userinfo, and any
	// other use of "*" are constructor errors. Required.
	Allowed []string
	// AllowMissing admits requests without an Origin header. Browsers always
	// send one on a WebSocket handshake, so a missing header means a
	// non-browser client; enable it only when such clients authenticate
	// otherwise. Default false: refused.
	AllowMissing bool
	// Logger receives one Warn line per refusal (event "origin_rejected").
	// Default: nothing is logged.
	Logger *slog.Logger
	// Observer counts refusals for metrics (hub.Observer satisfies it).
	// Default: none.
	Observer Observer
}

// Origins is an origin allowlist. It is safe for concurrent use and
// immutable after NewOrigins.
type Origins struct {
	exact        map[originKey]struct{}
	patterns     []originPattern
	allowMissing bool
	log          *slog.Logger
	obs          Observer
}

// originKey is a normalised origin. It is comparable so that a look-up
// built from substrings of the header allocates nothing.
type originKey struct {
	scheme string
	host   string // lower-case; IPv6 literals in brackets and canonical form
	port   uint16 // explicit, default ports filled in
}

// originPattern is "scheme://*.suffix[:port]".
type originPattern struct {
	scheme    string
	dotSuffix string // ".example.com"
	port      uint16
}

// NewOrigins validates opts and returns the allowlist. It fails closed: an
// entry it does not understand is an error, never a silent widening.
func NewOrigins(opts OriginOptions) (*Origins, error) {
	if len(opts.Allowed) == 0 {
		return nil, errors.New("guard: OriginOptions.Allowed is empty; list the origins of your frontends")
	}
	o := &Origins{
		exact:        make(map[originKey]struct{}, len(opts.Allowed)),
		allowMissing: opts.AllowMissing,
		log:          loggerOrDiscard(opts.Logger),
		obs:          observerOrNop(opts.Observer),
	}
	for i, entry := range opts.Allowed {
		if err := o.add(entry); err != nil {
			return nil, fmt.Errorf("guard: OriginOptions.Allowed[%d] %q: %w", i, entry, err)
		}
	}
	return o, nil
}

func (o *Origins) add(entry string) error {
	e := strings.TrimSpace(entry)
	switch {
	case e == "*":
		return errors.New(`a bare "*" would admit every site; list origins or use "https://*.example.com"`)
	case strings.EqualFold(e, "null"):
		return errors.New(`the "null" origin (sandboxed frames, file:) cannot be allowed`)
	}
	if i := strings.Index(e, "://"); i >= 0 {
		rest := e[i+3:]
		if strings.HasPrefix(rest, "*.") {
			return o.addPattern(e[:i+3] + rest[2:])
		}
	}
	if strings.Contains(e, "*") {
		return errors.New(`"*" is only allowed as the whole left-most label, as in "https://*.example.com"`)
	}
	k, err := parseOrigin(e)
	if err != nil {
		return err
	}
	o.exact[k] = struct{}{}
	return nil
}

func (o *Origins) addPattern(base string) error {
	if strings.Contains(base, "*") {
		return errors.New(`"*" is only allowed once, as the whole left-most label`)
	}
	k, err := parseOrigin(base)
	if err != nil {
		return err
	}
	if strings.HasPrefix(k.host, "[") || isIPv4Like(k.host) {
		return errors.New("a subdomain pattern needs a domain name, not an IP address")
	}
	if !strings.Contains(k.host, ".") {
		// "*.com" or "*.localhost" would hand the allowlist to anyone who
		// can register or resolve a name there.
		return errors.New("a subdomain pattern needs at least two labels after \"*.\"")
	}
	o.patterns = append(o.patterns, originPattern{scheme: k.scheme, dotSuffix: "." + k.host, port: k.port})
	return nil
}

// Allow reports whether origin, the raw value of an Origin header, is on the
// allowlist. "null", malformed values and values carrying a path or userinfo
// are refused.
func (o *Origins) Allow(origin string) bool {
	k, err := parseOrigin(origin)
	if err != nil {
		return false
	}
	if _, ok := o.exact[k]; ok {
		return true
	}
	for _, p := range o.patterns {
		// parseOrigin has validated every label of k.host, so a host that
		// ends in ".example.com" and is longer than it has at least one
		// non-empty label in front.
		if k.scheme == p.scheme && k.port == p.port &&
			len(k.host) > len(p.dotSuffix) && strings.HasSuffix(k.host, p.dotSuffix) {
			return true
		}
	}
	return false
}

// Check reports whether r may proceed: its single Origin header is allowed,
// or it has none and OriginOptions.AllowMissing is set. Several Origin
// headers, or an empty one, are refused.
func (o *Origins) Check(r *http.Request) bool {
	vals := r.Header.Values("Origin")
	switch len(vals) {
	case 0:
		return o.allowMissing
	case 1:
		return o.Allow(vals[0])
	default:
		return false
	}
}

// Middleware refuses requests that fail Check with 403 and code FORBIDDEN,
// before next (the upgrade) runs.
func (o *Origins) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.Check(r) {
			refuse(w, r, o.obs, o.log, eventOriginRejected, infoOf(r, ""), &protocol.Refusal{
				Status: http.StatusForbidden, Code: protocol.CodeForbidden, Message: "origin not allowed",
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// parseOrigin parses a serialized origin, scheme "://" host [":" port], as a
// browser sends it. It is stricter than net/url on purpose: anything that is
// not plainly an origin ("@", "/", "%", "\", spaces, non-ASCII) is an error,
// because each of those is how a look-alike smuggles a different host past a
// sloppier comparison.
func parseOrigin(s string) (originKey, error) {
	if s == "" || len(s) > maxOriginLength {
		return originKey{}, errors.New("empty or overlong origin")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '\\' {
			return originKey{}, errors.New("origin contains a space, control, non-ASCII, '%' or '\\' byte")
		}
	}
	s = strings.ToLower(s) // allocates only when there is upper case
	i := strings.Index(s, "://")
	if i < 0 {
		return originKey{}, errors.New(`origin must be scheme "://" host`)
	}
	var k originKey
	var defPort uint16
	switch k.scheme = s[:i]; k.scheme {
	case "https":
		defPort = 443
	case "http":
		defPort = 80
	default:
		return originKey{}, errors.New("origin scheme must be http or https")
	}
	rest := s[i+3:]
	if j := strings.IndexAny(rest, "@/?#"); j >= 0 {
		switch rest[j] {
		case '@':
			return originKey{}, errors.New("origin must not contain userinfo")
		case '/':
			return originKey{}, errors.New("origin must not contain a path, not even a trailing '/'")
		default:
			return originKey{}, errors.New("origin must not contain a query or fragment")
		}
	}
	host, portStr, err := splitHostPort(rest)
	if err != nil {
		return originKey{}, err
	}
	k.port = defPort
	if portStr != "" {
		// Leading zeros are refused: a browser never serializes them, and
		// one canonical spelling per origin keeps comparisons honest.
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || p == 0 || portStr[0] == '0' {
			return originKey{}, errors.New("origin port must be 1-65535 without leading zeros")
		}
		k.port = uint16(p)
	}
	if k.host, err = normaliseHost(host); err != nil {
		return originKey{}, err
	}
	return k, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(hp string) (host, port string, err error) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("origin has an unterminated IPv6 literal")
		}
		host, after := hp[:end+1], hp[end+1:]
		if after == "" {
			return host, "", nil
		}
		if after[0] != ':' || len(after) == 1 {
			return "", "", errors.New("origin has junk after the IPv6 literal")
		}
		return host, after[1:], nil
	}
	if j := strings.IndexByte(hp, ':'); j >= 0 {
		if j == len(hp)-1 {
			return "", "", errors.New("origin has an empty port")
		}
		return hp[:j], hp[j+1:], nil
	}
	return hp, "", nil
}

// normaliseHost validates a lower-case host and returns its canonical form.
func normaliseHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("origin has an empty host")
	}
	if h[0] == '[' {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errors.New("origin has an invalid IPv6 literal")
		}
		if c := "[" + a.String() + "]"; c != h {
			return c, nil
		}
		return h, nil
	}
	if isIPv4Like(h) {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is4() {
			return "", errors.New("origin has an invalid IPv4 address")
		}
		return h, nil
	}
	if len(h) > 253 {
		return "", errors.New("origin host is longer than 253 bytes")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return "", errors.New("origin host has an empty or overlong label")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", errors.New("origin host has a character outside [a-z0-9-_]")
			}
		}
	}
	return h, nil
}

// isIPv4Like reports whether h is made of digits and dots only, the shape
// that must then be a well-formed dotted quad rather than a domain name.
func isIPv4Like(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
