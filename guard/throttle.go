package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/protocol"
)

// maxForwardedHops bounds the X-Forwarded-For walk; no real proxy chain is
// this long, and a longer header is treated as if it were absent.
const maxForwardedHops = 32

// ThrottleOptions configures NewThrottle. The zero value is the safe default:
// 10 handshakes per minute per client, no trusted proxies.
type ThrottleOptions struct {
	// Attempts is how many handshakes a client may start per Window, on
	// average. Default 10.
	Attempts int
	// Window is the period Attempts refers to. Default 1 minute.
	Window time.Duration
	// Burst is how many handshakes a client may start back to back after it
	// has been quiet. Default Attempts.
	Burst int
	// TrustedProxies lists the peers whose X-Forwarded-For header is
	// believed. From any other peer the header is ignored, since anyone can
	// send it. Default none: the client is always the TCP peer.
	TrustedProxies []netip.Prefix
	// IPv6Prefix is the prefix length IPv6 clients are grouped by. A single
	// subscriber usually holds a whole /64, so counting per address would let
	// it rotate addresses for free. 1 to 128; default 64.
	IPv6Prefix int
	// MaxClients bounds how many clients are tracked, and so the memory an
	// attacker rotating addresses can make the throttle hold. At least 2;
	// default 100,000.
	MaxClients int
	// Logger receives one Warn line per refusal (event
	// "handshake_throttled"). Default: nothing is logged.
	Logger *slog.Logger
	// Observer counts refusals for metrics (hub.Observer satisfies it).
	// Default: none.
	Observer Observer
	// Now returns the current time; tests replace it. Default time.Now.
	Now func() time.Time
}

// Throttle limits how often each client IP may start a WebSocket handshake.
// Every client has a token bucket: it holds up to Burst tokens, refills
// at Attempts per Window, and each handshake takes one. Safe for concurrent
// use.
//
// Memory is bounded by keeping clients in two generations of maps. New and
// returning clients go into the current one; when it holds MaxClients/2
// entries, or when a bucket refill time (Burst / rate) has passed, the
// current map becomes the previous one and the old previous map is dropped.
// A client found in the previous map is moved back to the current one. A
// client dropped by time had a full bucket anyway, so nothing is lost; a
// client dropped because of size (an address-rotation flood of more than
// MaxClients/2 new clients within a refill time) starts again with a full
// bucket. That trade-off is deliberate: forgetting a few partly used buckets
// under a flood is better than running out of memory.
type Throttle struct {
	limit   rate.Limit
	burst   int
	refill  time.Duration
	half    int
	v6Bits  int
	proxies []netip.Prefix
	log     *slog.Logger
	obs     Observer
	now     func() time.Time

	mu          sync.Mutex // guards the fields below
	cur, prev   map[netip.Addr]*rate.Limiter
	lastRotated time.Time
}

// NewThrottle validates opts, fills in the defaults and returns the
// throttle.
func NewThrottle(opts ThrottleOptions) (*Throttle, error) {
	o, err := throttleDefaults(opts)
	if err != nil {
		return nil, err
	}
	lim := rate.Limit(float64(o.Attempts) / o.Window.Seconds())
	t := &Throttle{
		limit:   lim,
		burst:   o.Burst,
		refill:  time.Duration(float64(o.Burst) / float64(lim) * float64(time.Second)),
		half:    o.MaxClients / 2,
		v6Bits:  o.IPv6Prefix,
		proxies: make([]netip.Prefix, len(o.TrustedProxies)),
		log:     loggerOrDiscard(o.Logger),
		obs:     observerOrNop(o.Observer),
		now:     o.Now,
		cur:     make(map[netip.Addr]*rate.Limiter),
		prev:    make(map[netip.Addr]*rate.Limiter),
	}
	for i, p := range o.TrustedProxies {
		t.proxies[i] = p.Masked()
	}
	t.lastRotated = t.now()
	return t, nil
}

func throttleDefaults(o ThrottleOptions) (ThrottleOptions, error) {
	if o.Attempts < 0 || o.Window < 0 || o.Burst < 0 || o.IPv6Prefix < 0 || o.MaxClients < 0 {
		return o, errors.New("guard: ThrottleOptions fields must not be negative")
	}
	if o.Attempts == 0 {
		o.Attempts = 10
	}
	if o.Window == 0 {
		o.Window = time.Minute
	}
	if o.Burst == 0 {
		o.Burst = o.Attempts
	}
	if o.IPv6Prefix == 0 {
		o.IPv6Prefix = 64
	}
	if o.IPv6Prefix > 128 {
		return o, fmt.Errorf("guard: ThrottleOptions.IPv6Prefix %d is more than 128", o.IPv6Prefix)
	}
	if o.MaxClients == 0 {
		o.MaxClients = 100_000
	}
	if o.MaxClients < 2 {
		return o, errors.New("guard: ThrottleOptions.MaxClients must be at least 2")
	}
	for i, p := range o.TrustedProxies {
		if !p.IsValid() {
			return o, fmt.Errorf("guard: ThrottleOptions.TrustedProxies[%d] is not a valid prefix", i)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Allow takes one handshake token from addr's bucket. When the bucket is
// empty it reports false and how long until a token is back. IPv6 addresses
// count against their IPv6Prefix network; an invalid addr shares one bucket
// with every other invalid addr.
func (t *Throttle) Allow(addr netip.Addr) (ok bool, retryAfter time.Duration) {
	key := t.clientKey(addr)
	now := t.now()

	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	lim, found := t.cur[key]
	if !found {
		if lim, found = t.prev[key]; found {
			delete(t.prev, key)
		} else {
			lim = rate.NewLimiter(t.limit, t.burst)
		}
		if len(t.cur) >= t.half {
			t.rotate(now)
		}
		t.cur[key] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused attempt must not queue for a future token
		return false, d
	}
	return true, 0
}

// expire rotates the generations by time. Every Allow goes through here, so
// entries of the previous map were last used before lastRotated and entries
// of the current map before the previous call: once a refill time has
// passed their buckets are full and dropping them changes nothing.
func (t *Throttle) expire(now time.Time) {
	switch elapsed := now.Sub(t.lastRotated); {
	case elapsed >= 2*t.refill:
		t.cur, t.prev = make(map[netip.Addr]*rate.Limiter), make(map[netip.Addr]*rate.Limiter)
		t.lastRotated = now
	case elapsed >= t.refill:
		t.rotate(now)
	}
}

// rotate drops the previous generation. The current map is replaced rather
// than cleared so that the memory of a flood is returned, not kept as map
// capacity.
func (t *Throttle) rotate(now time.Time) {
	t.prev = t.cur
	t.cur = make(map[netip.Addr]*rate.Limiter)
	t.lastRotated = now
}

func (t *Throttle) clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(t.v6Bits); err == nil {
			return p.Addr()
		}
	}
	return a
}

// Len returns how many clients are tracked. It never exceeds MaxClients.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur) + len(t.prev)
}

// ClientIP returns the address r is counted against: the TCP peer, or, when
// the peer is a trusted proxy, the right-most X-Forwarded-For hop that is not
// itself a trusted proxy. Hops to the left of that one were written by the
// client and are never believed. When every hop is trusted the left-most one
// is the client; an unparsable or overlong header falls back to the peer. The
// result is invalid only when RemoteAddr is.
func (t *Throttle) ClientIP(r *http.Request) netip.Addr {
	peer := parseHop(r.RemoteAddr)
	if !t.trusted(peer) {
		return peer
	}
	xff := r.Header.Values("X-Forwarded-For")
	client := peer
	hops := 0
	// Header lines are one list in order; walk it from the right.
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			hops++
			if hops > maxForwardedHops {
				return peer
			}
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				line, hop = line[:j], line[j+1:]
			} else {
				line, hop = "", line
			}
			a := parseHop(strings.TrimSpace(hop))
			if !a.IsValid() {
				return peer
			}
			if !t.trusted(a) {
				return a
			}
			client = a
		}
	}
	return client
}

func (t *Throttle) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop accepts "ip", "ip:port" and "[ipv6]:port", the forms found in
// RemoteAddr and in X-Forwarded-For as written by common proxies.
func parseHop(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// Middleware refuses a client whose bucket is empty with 429, code
// RATE_LIMITED and a Retry-After header, before next (the upgrade) runs.
func (t *Throttle) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := t.ClientIP(r)
		if ok, retry := t.Allow(ip); !ok {
			ipStr := ""
			if ip.IsValid() {
				ipStr = ip.String()
			}
			refuse(w, r, t.obs, t.log, eventThrottled, infoOf(r, ipStr), &protocol.Refusal{
				Status: http.StatusTooManyRequests, Code: protocol.CodeRateLimited,
				Message: "too many connection attempts", RetryAfter: retry,
			})
			return
		}
		// Later guards log the address behind the proxy, not the proxy.
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, ip)))
	})
}
