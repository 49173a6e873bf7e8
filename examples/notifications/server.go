package main

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/rueidis"

	wsredis "github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/metrics"
	"github.com/wsgate/wsgate/sanitize"
	"github.com/wsgate/wsgate/socketio"
)

// config is everything newServer needs; main fills it from flags and the
// environment, tests directly.
type config struct {
	// Addr is the address the server is reached at, host:port. The default
	// origin allowlist is http://Addr (https:// with TLS), so it must name
	// a host.
	Addr string
	// TLS says the server is reached over HTTPS; it only changes the
	// default origin. Default false.
	TLS bool
	// Origins is the allowlist of page origins. Default: http://Addr, or
	// https://Addr with TLS, only.
	Origins []string
	// Secret verifies (and in demo mode signs) HS256 tokens. Empty means
	// demo mode: a random secret and printed demo tokens.
	Secret []byte
	// Issuer and Audience, when set, are required in every token.
	Issuer, Audience string
	// TokenTTL is the lifetime of demo tokens. Default 12h.
	TokenTTL time.Duration
	// RedisURL selects the Redis broker, so that several instances share
	// broadcasts: redis://[user:password@]host:port[/db], or rediss:// for
	// TLS. Default "": the in-memory broker, one process.
	RedisURL string
	// RedisHMACKey authenticates every message between instances, so that
	// write access to Redis is not enough to inject notifications. Every
	// instance needs the same key. Default: derived from Secret.
	RedisHMACKey []byte
	// Throttle limits WebSocket handshakes per client IP. Default: guard's
	// (10/min).
	Throttle guard.ThrottleOptions
	// APIRate limits API requests per client IP. Default 120/min, burst 30.
	APIRate guard.ThrottleOptions
	// Logger receives the server's and the security log. Default: discard.
	Logger *slog.Logger
}

// server is the notification gateway: the guarded WebSocket endpoint, the
// publishing API, metrics and health probes, behind one http.Handler.
type server struct {
	log       *slog.Logger
	hub       *hub.Hub
	dir       *directory
	verifier  *auth.JWT
	origins   *guard.Origins
	throttle  *guard.Throttle // WebSocket handshakes per IP
	apiLimit  *guard.Throttle // API requests per IP
	validate  *validator.Validate
	sanitizer *sanitize.Sanitizer
	registry  *prometheus.Registry
	redis     *redisBackend    // nil on the in-memory broker
	sio       *socketio.Server // the /notifications namespace, for socket.io-client frontends
	handler   http.Handler

	// Set only in demo mode, where the server issues its own tokens.
	demo   bool
	tokens tokenIssuer
}

// newServer validates cfg and builds the gateway. It fails rather than
// weakening anything: a short secret, an unusable allowlist, an address
// without a host or an unreachable Redis are errors.
func newServer(cfg config) (*server, error) {
	s := &server{
		log:       cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		dir:       newDirectory(),
		validate:  newValidator(),
		sanitizer: sanitize.New(sanitize.Options{}),
		registry:  prometheus.NewRegistry(),
	}
	secret, err := s.newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	s.tokens = tokenIssuer{secret: secret, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cmp.Or(cfg.TokenTTL, 12*time.Hour)}
	allowed := cfg.Origins
	if len(allowed) == 0 {
		o, err := defaultOrigin(cfg.Addr, cfg.TLS)
		if err != nil {
			return nil, err
		}
		allowed = []string{o}
	}
	if s.origins, err = guard.NewOrigins(guard.OriginOptions{Allowed: allowed, Logger: s.log}); err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	m, err := metrics.New(s.registry, metrics.Options{})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	throttleOpts := cfg.Throttle
	throttleOpts.Logger, throttleOpts.Observer = s.log, m
	if s.throttle, err = guard.NewThrottle(throttleOpts); err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	apiOpts := cfg.APIRate
	if apiOpts.Attempts == 0 {
		apiOpts.Attempts, apiOpts.Burst = 120, 30
	}
	if s.apiLimit, err = guard.NewThrottle(apiOpts); err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	limits, err := guard.NewLimits(guard.LimitsOptions{Logger: s.log, Observer: m})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if cfg.RedisURL != "" {
		key := cfg.RedisHMACKey
		if len(key) == 0 {
			key = relayKey(secret)
		}
		if s.redis, err = newRedisBackend(cfg.RedisURL, key, s.log, s.registry); err != nil {
			return nil, err
		}
	}
	if s.hub, err = s.newHub(m, limits); err != nil {
		if s.redis != nil {
			s.redis.closeAll()
		}
		return nil, err
	}
	// The second audit's frontends connect with socket.io-client to the
	// /notifications namespace: the same hub, behind the same guards.
	s.sio, err = socketio.New(socketio.Options{
		Namespaces: map[string]*hub.Hub{"/notifications": s.hub},
		Origins:    s.origins,
		Throttle:   s.throttle,
		Limits:     limits,
		Logger:     s.log,
	})
	if err != nil {
		_ = s.Shutdown(context.Background())
		return nil, fmt.Errorf("notifications: %w", err)
	}
	s.handler = s.routes(limits)
	return s, nil
}

// newVerifier sets up the JWT verifier for the configured secret, or for a
// fresh random one in demo mode, and returns the secret.
func (s *server) newVerifier(cfg config) ([]byte, error) {
	secret := cfg.Secret
	switch {
	case len(secret) == 0:
		// No fixed fallback: every demo run has its own secret, so a token
		// copied from a blog post or another run is worthless here.
		secret = make([]byte, 32)
		_, _ = rand.Read(secret) // crypto/rand.Read never fails
		s.demo = true
	case len(secret) < auth.MinHMACSecretBytes:
		return nil, fmt.Errorf("notifications: the JWT secret is %d bytes; at least %d are required", len(secret), auth.MinHMACSecretBytes)
	}
	v, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret, Issuer: cfg.Issuer, Audience: cfg.Audience})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	s.verifier = v
	return secret, nil
}

// newHub builds the WebSocket endpoint. Connections join user:{id},
// tenant:{id} and, for SUPER_ADMIN, global on connect; the default room
// policy refuses every other room, so clients cannot listen in anywhere.
// On Redis, the per-user limit and presence span every instance; in
// memory they are this process's.
func (s *server) newHub(m *metrics.Metrics, limits *guard.Limits) (*hub.Hub, error) {
	opts := hub.Options{
		Authenticator: s.verifier,
		CheckOrigin:   s.origins.Check,
		Admit:         limits.Admit,
		ClientIP:      func(r *http.Request) string { return addrString(s.throttle.ClientIP(r)) },
		GlobalRole:    superAdminRole,
		Observer:      m,
		Logger:        s.log,
		// The last 100 notifications of every user and tenant, for two
		// minutes: a client that reconnects within that (a network switch,
		// a deploy) gets what it missed, on any instance. What is older is
		// the application's to reload from its database.
		History: map[string]hub.HistoryPolicy{
			"user":   {Size: 100, TTL: 2 * time.Minute},
			"tenant": {Size: 100, TTL: 2 * time.Minute},
		},
	}
	if s.redis != nil {
		opts.Broker = s.redis.broker
		opts.Admit = s.redis.limiter.Admit
		opts.Presence = s.redis.presence
	}
	h, err := hub.New(opts)
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	registerEvents(h)
	return h, nil
}

func (s *server) routes(limits *guard.Limits) http.Handler {
	mux := http.NewServeMux()
	// The throttle is outermost so that every attempt counts, even one a
	// later guard refuses.
	mux.Handle("GET /ws", guard.Chain(s.hub, s.throttle.Middleware, s.origins.Middleware, limits.Middleware))
	mux.Handle("/socket.io/", s.sio) // its guards are inside: every request, not only the first
	mux.Handle("POST /api/notifications", s.authenticated(s.publishNotification))
	mux.Handle("GET /api/tenants/{id}/online", s.authenticated(s.tenantOnline))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", s.hub.LivenessHandler())
	mux.Handle("GET /readyz", s.hub.ReadinessHandler())
	return mux
}

// ServeHTTP implements http.Handler.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Shutdown closes every connection so that clients reconnect elsewhere —
// WebSockets with "bye" and 1012, Socket.IO sessions with 1012 or
// Engine.IO's close packet — drains them until ctx is done and closes the
// broker; then it removes this instance's leases and presence entries from
// Redis.
func (s *server) Shutdown(ctx context.Context) error {
	var err error
	if s.sio != nil {
		err = s.sio.Shutdown(ctx)
	}
	err = errors.Join(err, s.hub.Shutdown(ctx))
	if s.redis != nil {
		s.redis.closeAll() // the hub closes only what it created
	}
	return err
}

// redisBackend is what a multi-instance deployment shares through Redis:
// broadcasts (the broker), per-user connection leases (the limiter) and
// room presence. Each holds its own connections.
type redisBackend struct {
	broker   *wsredis.Broker
	limiter  *wsredis.Limiter
	presence *wsredis.Presence
}

// newRedisBackend connects the Redis parts described by rawURL and exposes
// their counters on reg. Errors never repeat the URL, which may hold a
// password.
func newRedisBackend(rawURL string, key []byte, log *slog.Logger, reg prometheus.Registerer) (_ *redisBackend, err error) {
	co, err := rueidis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("notifications: Redis URL: %w", err)
	}
	rb := &redisBackend{}
	defer func() {
		if err != nil {
			rb.closeAll()
		}
	}()
	// Each constructor copies the options it is given.
	rb.broker, err = wsredis.New(wsredis.Options{
		Addrs: co.InitAddress, Username: co.Username, Password: co.Password,
		HMACKey: key, Logger: log,
		ClientOption: &co, // TLS (rediss://) and the database number
	})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	rb.limiter, err = wsredis.NewLimiter(wsredis.LimiterOptions{
		Addrs: co.InitAddress, Username: co.Username, Password: co.Password,
		ClientOption: &co, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	rb.presence, err = wsredis.NewPresence(wsredis.PresenceOptions{
		Addrs: co.InitAddress, Username: co.Username, Password: co.Password,
		ClientOption: &co, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if err := rb.register(reg); err != nil {
		return nil, fmt.Errorf("notifications: register Redis metrics: %w", err)
	}
	return rb, nil
}

// register exposes the Redis parts' counters, which the hub's observer
// does not see: messages lost or rejected between nodes, limiter outages.
func (rb *redisBackend) register(reg prometheus.Registerer) error {
	broker := func(f func(wsredis.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(rb.broker.Stats())) }
	}
	limiter := func(f func(wsredis.LimiterStats) uint64) func() float64 {
		return func() float64 { return float64(f(rb.limiter.Stats())) }
	}
	for _, c := range []struct {
		name, help string
		value      func() float64
	}{
		{"published_total", "Messages Redis accepted from this node.", broker(func(s wsredis.Stats) uint64 { return s.Published })},
		{"publish_errors_total", "Publishes that failed.", broker(func(s wsredis.Stats) uint64 { return s.PublishErrors })},
		{"delivered_total", "Messages received from Redis and handed to the hub.", broker(func(s wsredis.Stats) uint64 { return s.Delivered })},
		{"dropped_total", "Messages lost because the delivery buffer was full.", broker(func(s wsredis.Stats) uint64 { return s.Dropped })},
		{"rejected_total", "Messages dropped for a bad HMAC tag.", broker(func(s wsredis.Stats) uint64 { return s.Rejected })},
		{"replayed_total", "Signed messages dropped because they were delivered before.", broker(func(s wsredis.Stats) uint64 { return s.Replayed })},
		{"stale_total", "Signed messages dropped because their time was outside the replay window.", broker(func(s wsredis.Stats) uint64 { return s.Stale })},
		{"resubscribes_total", "Pub/sub connections re-established after a loss.", broker(func(s wsredis.Stats) uint64 { return s.Resubscribes })},
		{"limiter_refused_total", "Connections refused for the cluster-wide per-user limit.", limiter(func(s wsredis.LimiterStats) uint64 { return s.Refused })},
		{"limiter_unavailable_total", "Admissions that met a Redis error.", limiter(func(s wsredis.LimiterStats) uint64 { return s.Unavailable })},
		{"presence_dropped_total", "Presence updates lost to a full queue.", func() float64 { return float64(rb.presence.Stats().Dropped) }},
	} {
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "wsgate", Subsystem: "redis", Name: c.name, Help: c.help,
		}, c.value)); err != nil {
			return err
		}
	}
	return nil
}

// closeAll closes every part; it is for a server that never got a hub,
// which would otherwise close the broker.
func (rb *redisBackend) closeAll() {
	if rb.broker != nil {
		_ = rb.broker.Close()
	}
	rb.close()
}

// close releases what the hub does not own: this node's leases and
// presence entries are removed at once rather than left to expire.
func (rb *redisBackend) close() {
	if rb.limiter != nil {
		_ = rb.limiter.Close()
	}
	if rb.presence != nil {
		_ = rb.presence.Close()
	}
}

// relayKey derives the key that authenticates messages between instances
// from the JWT secret, so that instances sharing a secret need nothing
// more; the label keeps it distinct from anything else derived from it.
func relayKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("wsgate examples/notifications redis relay v1"))
	return m.Sum(nil)
}

// defaultOrigin is the origin of a page served at addr. A wildcard listen
// address has no single origin, so it needs -origins.
func defaultOrigin(addr string, https bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("notifications: address %q: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("notifications: address %q listens on every interface; list the page origins with -origins", addr)
	}
	if https {
		return "https://" + net.JoinHostPort(host, port), nil
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// tokenIssuer signs HS256 tokens for the seeded accounts: in demo mode with
// the run's random secret, and for the token subcommand with the configured
// one. With a real identity provider nothing here is used.
type tokenIssuer struct {
	secret           []byte
	issuer, audience string
	ttl              time.Duration
}

func (t tokenIssuer) sign(a account) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(t.ttl)
	claims := jwt.MapClaims{"sub": a.ID, "iat": now.Unix(), "exp": exp.Unix()}
	if a.Tenant != "" {
		claims["tenant_id"] = a.Tenant
	}
	if len(a.Roles) > 0 {
		claims["roles"] = a.Roles
	}
	if t.issuer != "" {
		claims["iss"] = t.issuer
	}
	if t.audience != "" {
		claims["aud"] = t.audience
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	return token, exp, err
}

// demoToken signs a token for a seeded user. Only demo mode has the means:
// with a configured secret, tokens come from the identity provider.
func (s *server) demoToken(user string) (string, error) {
	if !s.demo {
		return "", errors.New("notifications: tokens are issued only in demo mode")
	}
	a, ok := s.dir.lookup(context.Background(), user)
	if !ok {
		return "", fmt.Errorf("notifications: %q is not a demo user", user)
	}
	token, _, err := s.tokens.sign(a)
	return token, err
}
