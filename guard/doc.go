// Package guard is net/http middleware that refuses a WebSocket handshake
// before the upgrade, so that a refused client costs one small HTTP answer
// rather than a connection.
//
// Three guards, each a func(http.Handler) http.Handler:
//
//   - Origins, an allowlist of exact origins and explicit subdomain patterns
//     (403 FORBIDDEN). There is no wildcard default and no glob matching:
//     "https://*.example.com" never admits "https://example.com.evil.net".
//   - Throttle, a per-IP token bucket on handshake attempts, aware of trusted
//     proxies and grouping IPv6 clients by network, with bounded memory (429
//     RATE_LIMITED with Retry-After).
//   - Limits, a cap on connections in flight per node (503 UNAVAILABLE) and,
//     through Admit, per authenticated user (429 CONNECTION_LIMIT_EXCEEDED).
//
// Every refusal has the JSON body {"code": ..., "message": ...} and, when a
// Logger is configured, one Warn line in the security log with the
// attributes event, ip, origin, user_agent, path and user when known; never a
// token, a query string or another header.
//
// The smallest use puts the throttle outermost, so that every attempt counts,
// even one that a later guard refuses:
//
//	origins, err := guard.NewOrigins(guard.OriginOptions{
//		Allowed: []string{"https://app.example.com"},
//	})
//	// handle err
//	throttle, err := guard.NewThrottle(guard.ThrottleOptions{})
//	// handle err
//	limits, err := guard.NewLimits(guard.LimitsOptions{})
//	// handle err
//	http.Handle("/ws", guard.Chain(hub,
//		throttle.Middleware, origins.Middleware, limits.Middleware))
//
// The hub calls limits.Admit(r.Context(), userID) once it knows the user.
package guard
