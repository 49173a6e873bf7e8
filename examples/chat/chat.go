package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
	"github.com/wsgate/wsgate/socketio"
	"github.com/wsgate/wsgate/web"
)

// tokenCookie carries the JWT for browsers. A cookie is safe for the
// WebSocket only because the origin allowlist is on: browsers attach it to
// cross-site handshakes too.
const tokenCookie = "wsgate_token"

//go:embed static
var staticFiles embed.FS

// config is everything newServer needs; main fills it from flags and the
// environment, tests directly.
type config struct {
	// Addr is the address the server is reached at, host:port. The default
	// origin allowlist is http://Addr (https:// with TLS), so it must name
	// a host.
	Addr string
	// TLS says the server is reached over HTTPS; it only changes the
	// default origins. Default false.
	TLS bool
	// Origins is the allowlist of page origins. Default: http://Addr
	// (https:// with TLS), and on a loopback address its localhost or
	// 127.0.0.1 twin.
	Origins []string
	// Secret verifies (and in demo mode signs) HS256 tokens. Empty means
	// demo mode: a random secret, a demo login and printed demo tokens.
	Secret []byte
	// Issuer and Audience, when set, are required in every token.
	Issuer, Audience string
	// TokenTTL is the lifetime of demo tokens. Default 12h.
	TokenTTL time.Duration
	// Throttle limits handshakes per client IP. Default: guard's (10/min).
	Throttle guard.ThrottleOptions
	// Logger receives the server's and the security log. Default: discard.
	Logger *slog.Logger
	// SocketIOClient is the file of socket.io-client's ES module bundle
	// (dist/socket.io.esm.min.js of the npm package): when set, the server
	// serves it and the page's Socket.IO variant on /socketio. Default
	// "": no Socket.IO page (the /socket.io/ endpoint is served anyway).
	SocketIOClient string
}

// server is the chat gateway: the page, the demo login, health probes and
// the guarded WebSocket endpoint, behind one http.Handler.
type server struct {
	log     *slog.Logger
	gw      *gateway.Gateway
	sio     *socketio.Server // socket.io-client frontends, on the same hub
	dir     *directory
	tmpl    *template.Template
	csp     string
	handler http.Handler
	reg     *prometheus.Registry // served at /metrics; never the global registry

	sioClient string // socket.io-client's bundle for /socketio; "" without the page

	// Set only in demo mode, where the server issues its own tokens.
	demo             bool
	secret           []byte
	issuer, audience string
	ttl              time.Duration
}

// newServer validates cfg and builds the gateway. It fails rather than
// weakening anything: a short secret, an unusable allowlist or an address
// without a host are errors.
func newServer(cfg config) (*server, error) {
	s := &server{
		log:      cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		dir:      newDirectory(),
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		ttl:      cmp.Or(cfg.TokenTTL, 12*time.Hour),
	}
	if cfg.SocketIOClient != "" {
		if st, err := os.Stat(cfg.SocketIOClient); err != nil || st.IsDir() {
			return nil, fmt.Errorf("chat: the socket.io-client bundle %q is not a file (dist/socket.io.esm.min.js of the npm package)", cfg.SocketIOClient)
		}
		s.sioClient = cfg.SocketIOClient
	}
	page, err := template.ParseFS(staticFiles, "static/index.html")
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	s.tmpl = page
	s.reg = prometheus.NewRegistry()
	// The heap alert of deploy/prometheus reads the Go collector's gauges.
	if err := s.reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	jwtOpts, err := s.jwtOptions(cfg)
	if err != nil {
		return nil, err
	}
	allowed := cfg.Origins
	if len(allowed) == 0 {
		if allowed, err = defaultOrigins(cfg.Addr, cfg.TLS); err != nil {
			return nil, err
		}
	}
	s.csp = contentSecurityPolicy(allowed)
	policy, err := room.NewPolicy(room.PolicyOptions{
		Rules: map[string]room.Rule{conversationKind: s.dir.canJoinConversation},
	})
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	// One place for the wiring: the origins, the logger and the metrics
	// reach the throttle, the origin allowlist, the connection limits and
	// the hub alike.
	s.gw, err = gateway.New(gateway.Options{
		JWT:      jwtOpts,
		Origins:  allowed,
		Throttle: cfg.Throttle,
		Logger:   s.log,
		Registry: s.reg,
		Hub: hub.Options{
			Tokens: auth.Extractor{Cookie: tokenCookie},
			Rooms:  policy,
			// A conversation keeps its last 300 messages and read receipts
			// for 10 minutes: a page that reconnects (a network switch, a
			// deploy) gets what it missed.
			History: map[string]hub.HistoryPolicy{conversationKind: {Size: 300, TTL: 10 * time.Minute}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	registerEvents(s.gw.Hub(), s.dir)
	// Socket.IO clients reach the same hub — handlers, rooms, limits —
	// behind the same guards: the origin check on every request, the
	// throttle and the per-node limit on each new session.
	s.sio, err = socketio.New(socketio.Options{
		Namespaces: map[string]*hub.Hub{"/": s.gw.Hub()},
		Origins:    s.gw.Origins(),
		Throttle:   s.gw.Throttle(),
		Limits:     s.gw.Limits(),
		Logger:     s.log,
	})
	if err != nil {
		_ = s.gw.Shutdown(context.Background())
		return nil, fmt.Errorf("chat: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// jwtOptions returns the JWT verifier's options for the configured secret,
// or for a fresh random one in demo mode.
func (s *server) jwtOptions(cfg config) (*auth.JWTOptions, error) {
	secret := cfg.Secret
	switch {
	case len(secret) == 0:
		// No fixed fallback: every demo run has its own secret, so a token
		// copied from a blog post or another run is worthless here.
		secret = make([]byte, 32)
		_, _ = rand.Read(secret) // crypto/rand.Read never fails
		s.demo, s.secret = true, secret
	case len(secret) < auth.MinHMACSecretBytes:
		return nil, fmt.Errorf("chat: the JWT secret is %d bytes; at least %d are required", len(secret), auth.MinHMACSecretBytes)
	}
	return &auth.JWTOptions{HMACSecret: secret, Issuer: cfg.Issuer, Audience: cfg.Audience}, nil
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s.gw)
	mux.Handle("/socket.io/", s.sio)
	mux.Handle("GET /healthz", s.gw.LivenessHandler())
	mux.Handle("GET /readyz", s.gw.ReadinessHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /{$}", s.secured(s.page(false)))
	mux.Handle("GET /static/app.js", s.secured(staticFile("static/app.js")))
	if s.sioClient != "" {
		// The page's Socket.IO variant: the same app.js, on socket.io-client
		// served from this origin (script-src 'self') through sio-client.js.
		mux.Handle("GET /socketio", s.secured(s.page(true)))
		mux.Handle("GET /static/sio-client.js", s.secured(staticFile("static/sio-client.js")))
		mux.Handle("GET /static/socket.io.esm.min.js", s.secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, s.sioClient)
		})))
	}
	// The browser client module app.js imports, from this origin so that
	// the CSP's script-src 'self' covers it.
	mux.Handle("GET /static/wsgate.js", s.secured(web.Handler()))
	mux.Handle("GET /static/style.css", s.secured(staticFile("static/style.css")))
	// Browsers ask for it on every page; an empty answer keeps 404s (and a
	// data: icon that the CSP would block) out of the console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if s.demo {
		mux.Handle("POST /demo/login", s.secured(http.HandlerFunc(s.demoLogin)))
	}
	return mux
}

// ServeHTTP implements http.Handler.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Shutdown closes every connection so that clients reconnect elsewhere —
// native WebSockets with "bye" and 1012, Socket.IO sessions with 1012 or
// Engine.IO's close packet — and drains them until ctx is done.
func (s *server) Shutdown(ctx context.Context) error {
	return errors.Join(s.sio.Shutdown(ctx), s.gw.Shutdown(ctx))
}

// defaultOrigins are the origins of the page this server serves at addr,
// over https when it serves TLS. On a loopback address the page opens as
// http://127.0.0.1:PORT or as http://localhost:PORT, whichever the user
// typed, so both are allowed. A wildcard listen address has no single
// origin, so it needs -origins.
func defaultOrigins(addr string, https bool) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("chat: address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if host == "" || (err == nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("chat: address %q listens on every interface; list the page origins with -origins", addr)
	}
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	own := scheme + net.JoinHostPort(host, port)
	switch {
	case strings.EqualFold(host, "localhost"):
		return []string{own, scheme + net.JoinHostPort("127.0.0.1", port)}, nil
	case err == nil && ip.IsLoopback():
		return []string{own, scheme + net.JoinHostPort("localhost", port)}, nil
	}
	return []string{own}, nil
}

// contentSecurityPolicy allows scripts, styles and connections from the
// page's own origin only, plus WebSockets to the allowed origins (CSP 2
// browsers do not count ws: as 'self').
func contentSecurityPolicy(origins []string) string {
	connect := []string{"'self'"}
	for _, o := range origins {
		o = strings.TrimSpace(o)
		if rest, ok := strings.CutPrefix(strings.ToLower(o), "https://"); ok {
			connect = append(connect, "wss://"+rest)
		} else if rest, ok := strings.CutPrefix(strings.ToLower(o), "http://"); ok {
			connect = append(connect, "ws://"+rest)
		}
	}
	return "default-src 'self'; connect-src " + strings.Join(connect, " ") +
		"; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
}

// secured sets the headers of everything a browser renders or runs.
func (s *server) secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", s.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// page serves the demo page: over the wsgate.v1 WebSocket, or, with
// socketIO, over Socket.IO.
func (s *server) page(socketIO bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		data := struct {
			Demo              bool
			Users             []string
			Conversation      string
			SocketIO          bool
			SocketIOAvailable bool
		}{s.demo, s.dir.users, demoConversation, socketIO, s.sioClient != ""}
		if err := s.tmpl.Execute(w, data); err != nil {
			s.log.Error("page_render_failed", slog.String("error", err.Error()))
		}
	})
}

// staticFile serves one embedded file; listing the files one by one keeps
// the rest of the embedded tree (the page template) from being served raw.
func staticFile(name string) http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory exists
	}
	base := strings.TrimPrefix(name, "static/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, base)
	})
}

// demoToken signs a token for a seeded user. Only demo mode has the means:
// with a configured secret, tokens come from the identity provider.
func (s *server) demoToken(user string) (string, time.Time, error) {
	if !s.demo {
		return "", time.Time{}, errors.New("chat: tokens are issued only in demo mode")
	}
	if !s.dir.isUser(user) {
		return "", time.Time{}, fmt.Errorf("chat: %q is not a demo user", user)
	}
	now := time.Now()
	exp := now.Add(s.ttl)
	claims := jwt.MapClaims{"sub": user, "iat": now.Unix(), "exp": exp.Unix()}
	if s.issuer != "" {
		claims["iss"] = s.issuer
	}
	if s.audience != "" {
		claims["aud"] = s.audience
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.secret)
	return token, exp, err
}
