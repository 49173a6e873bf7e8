package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/protocol"
)

// Reasons the Throttle passes to ThrottleOptions.Observer, which are also
// the event attribute of its log lines. The first is guard.Throttle's too,
// so dashboards count both throttles alike.
const (
	eventThrottled           = "handshake_throttled"
	eventThrottleUnavailable = "throttle_unavailable"
)

// ThrottleOptions configures NewThrottle. Only Client or Addrs is
// required; the zero values give guard.ThrottleOptions' default of 10
// attempts per minute.
type ThrottleOptions struct {
	// Client, when set, carries the commands; Throttle does not close it.
	// Set either Client or Addrs and its companions, not both.
	Client rueidis.Client
	// Addrs, Cluster, Username, Password and ClientOption describe a Redis
	// or a Redis Cluster exactly as in Options.
	Addrs              []string
	Cluster            bool
	Username, Password string
	ClientOption       *rueidis.ClientOption
	// Prefix starts every key ("<prefix>throttle:{<key>}"). Default
	// DefaultPrefix. In a cluster it may not contain '{' or '}'.
	Prefix string

	// Attempts is how many requests a key may make per Window, on average.
	// Default 10.
	Attempts int
	// Window is the period Attempts refers to. Default 1 minute.
	Window time.Duration
	// Burst is how many requests a key may make back to back after it has
	// been quiet. Default Attempts.
	Burst int
	// Timeout bounds each round trip. Default DefaultTimeout.
	Timeout time.Duration
	// FailOpen makes Middleware let requests through while Redis fails.
	// Default false: it answers 503 UNAVAILABLE.
	FailOpen bool
	// Key returns what Middleware counts a request against; a request
	// whose key is empty passes. Default: the TCP peer's address, IPv6
	// addresses grouped by /64 as guard.Throttle does. Behind a proxy pass
	// guard.Throttle's ClientIP, which believes X-Forwarded-For only from
	// trusted proxies: func(r *http.Request) string { return
	// g.ClientIP(r).String() }.
	Key func(r *http.Request) string
	// Observer counts Middleware's refusals by reason, as guard's
	// middleware does: "handshake_throttled", and "throttle_unavailable"
	// for a 503 while Redis fails (hub.Observer and metrics.Metrics
	// satisfy it). Default: none.
	Observer guard.Observer
	// Logger receives outages, recoveries and one Warn line per refusal
	// ("connection refused", with the attributes event, ip, origin,
	// user_agent and path of guard's lines, and the throttle's key).
	// Default: discard.
	Logger *slog.Logger
}

// Throttle is a rate limit shared by every node on one Redis, such as a
// cluster-wide handshake throttle: the generic cell rate algorithm
// (GCRA), the token bucket stated as one timestamp per key. Each key stores its theoretical arrival
// time (TAT): when its bucket would be full again. A request at time now
// is allowed if TAT - now leaves room for one more within the burst
// tolerance, and pushes TAT forward by one emission interval
// (Window/Attempts). The key expires when the bucket is full, so idle
// clients cost nothing. One Lua script on the Redis server's clock does
// the whole check, so concurrent nodes cannot both take the last token.
// Safe for concurrent use.
type Throttle struct {
	st       *store
	period   string // emission interval in microseconds
	tol      string // burst tolerance in microseconds
	failOpen bool
	key      func(*http.Request) string
	obs      guard.Observer
	closed   atomic.Bool
}

// NewThrottle validates opts and connects unless opts.Client is set.
func NewThrottle(opts ThrottleOptions) (*Throttle, error) {
	if opts.Attempts < 0 || opts.Burst < 0 || opts.Window < 0 {
		return nil, errors.New("redis: ThrottleOptions fields must not be negative")
	}
	if opts.Attempts == 0 {
		opts.Attempts = 10
	}
	if opts.Window == 0 {
		opts.Window = time.Minute
	}
	if opts.Burst == 0 {
		opts.Burst = opts.Attempts
	}
	period := opts.Window.Microseconds() / int64(opts.Attempts)
	if period < 1 {
		return nil, fmt.Errorf("redis: ThrottleOptions allow more than one attempt per microsecond")
	}
	st, err := open("throttle", connConfig{client: opts.Client, addrs: opts.Addrs, cluster: opts.Cluster,
		username: opts.Username, password: opts.Password, clientOption: opts.ClientOption,
		prefix: opts.Prefix, timeout: opts.Timeout, logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	t := &Throttle{
		st:       st,
		period:   strconv.FormatInt(period, 10),
		tol:      strconv.FormatInt(period*int64(opts.Burst-1), 10),
		failOpen: opts.FailOpen,
		key:      opts.Key,
		obs:      opts.Observer,
	}
	if t.key == nil {
		t.key = peerKey
	}
	if t.obs == nil {
		t.obs = nopObserver{}
	}
	return t, nil
}

type nopObserver struct{}

func (nopObserver) Refused(string) {}

// peerKey is the default key: the TCP peer, an IPv6 peer by its /64, which
// one subscriber usually holds whole.
func peerKey(r *http.Request) string {
	host := remoteHost(r)
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64) // cannot fail for a valid IPv6 address
		a = p.Addr()
	}
	return a.String()
}

// remoteHost is the TCP peer's address without the port.
func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// gcraScript takes one token. KEYS[1] the key's TAT (µs); ARGV emission
// interval and burst tolerance (µs). Returns {1, 0} when allowed, {0,
// milliseconds until a token is available} when not.
var gcraScript = newScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tonumber(ARGV[2]) - now
if wait > 0 then
  return {0, math.ceil(wait / 1000)}
end
tat = tat + period
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
return {1, 0}
`)

// Allow takes a token for key, on any node's behalf. When the bucket is
// empty it returns false and how long until a token is available. An
// error, which wraps ErrUnavailable when Redis could not be reached within
// Timeout, leaves the decision to the caller. An empty key is a key like
// any other.
func (t *Throttle) Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	if t.closed.Load() {
		return false, 0, ErrClosed
	}
	rctx, cancel := t.st.withTimeout(ctx)
	defer cancel()
	reply, err := gcraScript.exec(rctx, t.st.client, call{
		key: t.st.key("throttle", key), args: []string{t.period, t.tol},
	}).AsIntSlice()
	switch {
	case err != nil && ctx.Err() != nil:
		return false, 0, ctx.Err()
	case err != nil:
		return false, 0, fmt.Errorf("redis: throttle: %w", t.st.fail(err))
	case len(reply) != 2:
		return false, 0, fmt.Errorf("redis: throttle script replied %v", reply)
	}
	t.st.ok()
	return reply[0] == 1, time.Duration(reply[1]) * time.Millisecond, nil
}

// Middleware refuses a request whose key (ThrottleOptions.Key) has no
// token left with 429, code RATE_LIMITED and a Retry-After header, before
// next (the upgrade) runs; while Redis fails it answers 503 UNAVAILABLE
// unless FailOpen is set. It has guard.Throttle.Middleware's shape, so
// either slots into guard.Chain.
func (t *Throttle) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := t.key(r)
		if k == "" {
			next.ServeHTTP(w, r)
			return
		}
		ok, retry, err := t.Allow(r.Context(), k)
		switch {
		case err != nil && t.failOpen:
		case err != nil:
			t.refuse(w, r, k, eventThrottleUnavailable, &protocol.Refusal{
				Status: http.StatusServiceUnavailable, Code: protocol.CodeUnavailable,
				Message: "service unavailable", RetryAfter: unavailableRetryAfter, Err: err,
			})
			return
		case !ok:
			t.refuse(w, r, k, eventThrottled, &protocol.Refusal{
				Status: http.StatusTooManyRequests, Code: protocol.CodeRateLimited,
				Message: "too many connection attempts", RetryAfter: retry,
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maxLogged bounds the client-controlled values of a refusal's log line,
// as guard does, so that a refusal flood is not also a log-volume flood.
const maxLogged = 256

// refuse counts, logs and answers one refusal.
func (t *Throttle) refuse(w http.ResponseWriter, r *http.Request, key, event string, rej *protocol.Refusal) {
	t.obs.Refused(event)
	if t.st.log.Enabled(r.Context(), slog.LevelWarn) {
		t.st.log.LogAttrs(r.Context(), slog.LevelWarn, "connection refused",
			slog.String("event", event),
			slog.String("ip", clip(remoteHost(r))),
			slog.String("key", clip(key)),
			slog.String("origin", clip(r.Header.Get("Origin"))),
			slog.String("user_agent", clip(r.Header.Get("User-Agent"))),
			slog.String("path", clip(r.URL.Path)))
	}
	rej.Write(w)
}

func clip(s string) string {
	if len(s) > maxLogged {
		return s[:maxLogged] + "…"
	}
	return s
}

// Close closes the client unless it was given in ThrottleOptions.Client;
// Allow then fails with ErrClosed. Close is idempotent.
func (t *Throttle) Close() error {
	if !t.closed.Swap(true) {
		t.st.close()
	}
	return nil
}
