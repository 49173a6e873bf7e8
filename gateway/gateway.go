package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/metrics"
)

// Options configures New. Authenticator (or JWT) and Origins are required;
// every other zero value is the safe default of the piece it configures.
//
// What the pieces share is said here once: the logger, the observer and
// the origins reach every guard and the hub. Setting one of them again
// inside Throttle, Limits or Hub is an error rather than a second,
// possibly different, answer.
type Options struct {
	// Authenticator verifies credentials. Set it or JWT, not both.
	Authenticator auth.Authenticator
	// JWT builds an auth.JWT (an HMAC secret, a public key or a JWKS URL,
	// see auth.JWTOptions) when Authenticator is nil; Shutdown closes it,
	// which stops a JWKS refresh.
	JWT *auth.JWTOptions

	// Origins lists the page origins allowed to open a WebSocket, exact
	// ("https://app.example.com") or subdomain patterns
	// ("https://*.example.com"), as guard.OriginOptions.Allowed. Required:
	// there is no wildcard default. The guard refuses the others with 403
	// before anything else is looked at, and the hub checks the same list.
	Origins []string
	// AllowMissingOrigin admits requests without an Origin header
	// (non-browser clients). Default false: refused.
	AllowMissingOrigin bool

	// Throttle is the per-IP handshake throttle. Default: 10 attempts a
	// minute per IP, no trusted proxies; its TrustedProxies also decide the
	// client address the hub logs. Leave its Logger and Observer unset.
	Throttle guard.ThrottleOptions
	// Limits caps connections per user and per node. Default: 5 per user,
	// 10,000 per node. The per-user limit is this node's; for one shared by
	// every node set Hub.Admit (adapter/redis Limiter.Admit), which then
	// replaces it. Leave its Logger and Observer unset.
	Limits guard.LimitsOptions

	// Logger receives the security log of every guard and of the hub.
	// Default: discard.
	Logger *slog.Logger
	// Registry, when set, gets the Prometheus collectors of package metrics
	// (hub, guards and the readiness gauge). Default: no metrics. Set it or
	// Observer, not both.
	Registry prometheus.Registerer
	// Observer receives the operational events of the hub and the guards,
	// for metrics of your own. Default: none.
	Observer hub.Observer

	// Hub configures the hub: handlers' limits, rooms, broker, timeouts.
	// New sets its Authenticator, CheckOrigin, ClientIP, Observer and
	// Logger from the fields above (setting them here is an error), and
	// its Admit to the per-user limit unless it is set.
	Hub hub.Options
}

// Gateway is a hub behind its guards: an http.Handler that refuses before
// the upgrade what the throttle, the origin allowlist and the connection
// limits refuse, and serves the rest as WebSockets. Mount it like the hub
// (mux.Handle("/ws", g)); register handlers on Hub().
type Gateway struct {
	hub      *hub.Hub
	handler  http.Handler
	origins  *guard.Origins
	throttle *guard.Throttle
	limits   *guard.Limits
	metrics  *metrics.Metrics
	ownJWT   *auth.JWT // built from Options.JWT, closed by Shutdown
}

// New validates opts, builds the guards and the hub with what they share,
// and chains them: throttle outermost (every attempt counts, even one a
// later guard refuses), then the origin allowlist, then the connection
// limits, then the hub.
func New(opts Options) (*Gateway, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	g := &Gateway{}
	obs := opts.Observer
	if opts.Registry != nil {
		m, err := metrics.New(opts.Registry, metrics.Options{})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.metrics, obs = m, m
	}
	if err := g.buildGuards(&opts, obs); err != nil {
		return nil, err
	}
	authn := opts.Authenticator
	if authn == nil {
		j, err := auth.NewJWT(*opts.JWT)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		authn, g.ownJWT = j, j
	}
	ho := opts.Hub
	ho.Authenticator = authn
	ho.CheckOrigin = g.origins.Check
	ho.ClientIP = g.clientIP
	ho.Observer = obs
	ho.Logger = opts.Logger
	if ho.Admit == nil {
		ho.Admit = g.limits.Admit
	}
	h, err := hub.New(ho)
	if err != nil {
		g.closeJWT()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.hub = h
	if g.metrics != nil {
		if err := g.metrics.WatchReadiness(h.Ready); err != nil {
			g.closeJWT()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	g.handler = guard.Chain(h, g.throttle.Middleware, g.origins.Middleware, g.limits.Middleware)
	return g, nil
}

// check refuses options that are missing or said twice.
func (o *Options) check() error {
	switch {
	case o.Authenticator == nil && o.JWT == nil:
		return errors.New("gateway: set Authenticator or JWT")
	case o.Authenticator != nil && o.JWT != nil:
		return errors.New("gateway: set Authenticator or JWT, not both")
	case len(o.Origins) == 0:
		return errors.New("gateway: Origins is empty; list the origins of your frontends")
	case o.Registry != nil && o.Observer != nil:
		return errors.New("gateway: set Registry or Observer, not both")
	case o.Throttle.Logger != nil || o.Throttle.Observer != nil ||
		o.Limits.Logger != nil || o.Limits.Observer != nil:
		return errors.New("gateway: set Logger and Observer on gateway.Options, not on Throttle or Limits")
	case o.Hub.Authenticator != nil:
		return errors.New("gateway: set Authenticator on gateway.Options, not on Hub")
	case o.Hub.CheckOrigin != nil:
		return errors.New("gateway: set Origins on gateway.Options, not CheckOrigin on Hub")
	case o.Hub.ClientIP != nil:
		return errors.New("gateway: the client address comes from Throttle.TrustedProxies, not Hub.ClientIP")
	case o.Hub.Observer != nil || o.Hub.Logger != nil:
		return errors.New("gateway: set Logger and Observer on gateway.Options, not on Hub")
	}
	return nil
}

func (g *Gateway) buildGuards(opts *Options, obs hub.Observer) error {
	var gobs guard.Observer = obs // nil stays nil: the guards' default
	var err error
	g.origins, err = guard.NewOrigins(guard.OriginOptions{
		Allowed: opts.Origins, AllowMissing: opts.AllowMissingOrigin, Logger: opts.Logger, Observer: gobs,
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	to := opts.Throttle
	to.Logger, to.Observer = opts.Logger, gobs
	if g.throttle, err = guard.NewThrottle(to); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	lo := opts.Limits
	lo.Logger, lo.Observer = opts.Logger, gobs
	if g.limits, err = guard.NewLimits(lo); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// clientIP is the address the hub logs: the throttle's, which believes
// X-Forwarded-For only from trusted proxies.
func (g *Gateway) clientIP(r *http.Request) string {
	if a := g.throttle.ClientIP(r); a.IsValid() {
		return a.String()
	}
	return ""
}

// ServeHTTP serves the WebSocket endpoint through the guards.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !wire.WantsUpgrade(r) {
		// A plain request (a browser opening the URL, a health checker)
		// gets the hub's 426 that says a WebSocket is needed, rather than
		// a refusal of its origin or a count against the throttle.
		g.hub.ServeHTTP(w, r)
		return
	}
	g.handler.ServeHTTP(w, r)
}

// Hub returns the hub, for hub.Handle, Use, Broadcast, ToUser, JoinUser
// and the rest of its API.
func (g *Gateway) Hub() *hub.Hub { return g.hub }

// Origins returns the origin allowlist, for other endpoints that must
// agree with it (a CORS policy, a Content-Security-Policy).
func (g *Gateway) Origins() *guard.Origins { return g.origins }

// Throttle returns the handshake throttle; its ClientIP resolves a
// request's client address with the configured trusted proxies.
func (g *Gateway) Throttle() *guard.Throttle { return g.throttle }

// Limits returns the connection limits, for their counters.
func (g *Gateway) Limits() *guard.Limits { return g.limits }

// Metrics returns the Prometheus metrics registered on Options.Registry,
// or nil without one. They also satisfy the Observer fields of the
// adapter/redis throttle and of other guards built beside the gateway.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// LivenessHandler answers 200 while the process serves (mount at
// /healthz); see hub.Hub.LivenessHandler.
func (g *Gateway) LivenessHandler() http.Handler { return g.hub.LivenessHandler() }

// ReadinessHandler answers 503 while the hub shuts down or its broker is
// unhealthy (mount at /readyz); see hub.Hub.ReadinessHandler.
func (g *Gateway) ReadinessHandler() http.Handler { return g.hub.ReadinessHandler() }

// Shutdown shuts the hub down (see hub.Hub.Shutdown: 503 to new upgrades,
// bye and 1012 to every client, drain until ctx is done) and then closes
// the JWT verifier New built from Options.JWT.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.hub.Shutdown(ctx)
	g.closeJWT()
	return err
}

func (g *Gateway) closeJWT() {
	if g.ownJWT != nil {
		_ = g.ownJWT.Close() // Close never fails; it stops a refresh
	}
}
