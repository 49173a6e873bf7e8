package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// config is everything newService needs; main fills it from the
// environment, tests directly.
type config struct {
	// Origins are the frontends' origins. Required.
	Origins []string
	// JWKSURL is the identity provider's key set (ES256 keys, rotated by
	// kid); Issuer and Audience are required in every token when set.
	JWKSURL, Issuer, Audience string
	// RedisAddr, when set, puts the node in a cluster: broadcasts, the
	// per-user limit, presence and the handshake throttle are shared by
	// every node on that Redis. Default: one process, in memory.
	RedisAddr string
	// RedisHMACKey authenticates messages between nodes (at least 16
	// bytes); required with RedisAddr.
	RedisHMACKey []byte
	// Throttle is the handshake throttle; default 10 a minute per IP.
	Throttle guard.ThrottleOptions
	// Projects is the membership data. Default: the demo seed.
	Projects *projects
	// Logger receives the access log and the security log.
	Logger *slog.Logger
}

// service is the REST API with its real-time layer.
type service struct {
	log      *slog.Logger
	verifier *auth.JWT
	gw       *gateway.Gateway
	projects *projects
	reg      *prometheus.Registry
	redis    *redisBackend // nil in memory
	handler  http.Handler
}

// newService builds the service; close releases what it holds.
func newService(cfg config) (_ *service, err error) {
	s := &service{
		log:      cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		projects: cmp.Or(cfg.Projects, newProjects(demoProjects)),
		reg:      prometheus.NewRegistry(),
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := s.reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	// One verifier for the REST API and the WebSocket: one JWKS fetcher,
	// one set of rules.
	if s.verifier, err = auth.NewJWT(auth.JWTOptions{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience}); err != nil {
		return nil, err
	}
	rooms, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{"project": s.projects.canJoin}})
	if err != nil {
		return nil, err
	}
	hubOpts := hub.Options{Rooms: rooms}
	if cfg.RedisAddr != "" {
		if s.redis, err = newRedisBackend(cfg.RedisAddr, cfg.RedisHMACKey, s.log); err != nil {
			return nil, err
		}
		hubOpts.Broker, hubOpts.Presence, hubOpts.Admit = s.redis.broker, s.redis.presence, s.redis.limiter.Admit
	}
	s.gw, err = gateway.New(gateway.Options{
		Authenticator: s.verifier,
		Origins:       cfg.Origins,
		Throttle:      cfg.Throttle,
		Logger:        s.log,
		Registry:      s.reg,
		Hub:           hubOpts,
	})
	if err != nil {
		return nil, err
	}
	registerEvents(s.gw.Hub())
	ws := http.Handler(s.gw)
	if s.redis != nil {
		// Every node counts the same handshakes: the Redis throttle in
		// front of the gateway's own.
		t, err := s.redis.newThrottle(cfg.Throttle, s.gw)
		if err != nil {
			return nil, err
		}
		ws = guard.Chain(s.gw, t.Middleware)
	}
	s.handler = s.routes(ws)
	return s, nil
}

func (s *service) routes(ws http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.accessLog, middleware.Recoverer)
	r.Method(http.MethodGet, "/ws", ws)
	r.Method(http.MethodGet, "/healthz", s.gw.LivenessHandler())
	r.Method(http.MethodGet, "/readyz", s.gw.ReadinessHandler())
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	r.Route("/api/projects/{id}", func(r chi.Router) {
		r.Use(s.authenticated, s.memberOnly)
		r.Post("/members", s.addMember)
		r.Delete("/members/{user}", s.removeMember)
		r.Post("/announcements", s.announce)
	})
	return r
}

// ServeHTTP implements http.Handler.
func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// shutdown closes every WebSocket with bye and 1012 and drains them until
// ctx is done; then close releases the rest.
func (s *service) shutdown(ctx context.Context) error { return s.gw.Shutdown(ctx) }

func (s *service) close() {
	if s.redis != nil {
		s.redis.close()
	}
	if s.verifier != nil {
		_ = s.verifier.Close()
	}
}

// accessLog is the service's own middleware. It does not wrap the
// ResponseWriter, so the WebSocket upgrade (a hijack) goes through it
// untouched.
func (s *service) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		s.log.Info("request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("request_id", middleware.GetReqID(r.Context())), slog.Duration("duration", time.Since(start)))
	})
}

type identityKey struct{}

// authenticated verifies the bearer token of a REST call with the same
// verifier as the WebSocket.
func (s *service) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _, err := auth.Extractor{}.Extract(r)
		var id auth.Identity
		if err == nil {
			id, err = s.verifier.Authenticate(r.Context(), token)
		}
		if err != nil {
			writeError(w, http.StatusUnauthorized, "invalid credentials")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

func caller(r *http.Request) auth.Identity {
	id, _ := r.Context().Value(identityKey{}).(auth.Identity)
	return id
}

// memberOnly lets only a project's members act on it.
func (s *service) memberOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if !room.Valid(projectRoom(id)) || !s.projects.isMember(id, caller(r).UserID) {
			writeError(w, http.StatusForbidden, "not a member of this project")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// addMember grants membership: the new member's connections, on every
// node, join the project's room at once and are told.
func (s *service) addMember(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID string `json:"userId"`
	}
	if err := decode(r, &in); err != nil || in.UserID == "" || len(in.UserID) > 128 {
		writeError(w, http.StatusBadRequest, "userId is required")
		return
	}
	project := chi.URLParam(r, "id")
	s.projects.add(project, in.UserID)
	h := s.gw.Hub()
	if err := h.JoinUser(r.Context(), in.UserID, projectRoom(project)); err != nil {
		s.unavailable(w, err)
		return
	}
	if err := h.ToUser(r.Context(), in.UserID, "project:added", map[string]string{"projectId": project}); err != nil {
		s.unavailable(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeMember revokes membership: the room is left on every node.
func (s *service) removeMember(w http.ResponseWriter, r *http.Request) {
	project, user := chi.URLParam(r, "id"), chi.URLParam(r, "user")
	s.projects.remove(project, user)
	if err := s.gw.Hub().LeaveUser(r.Context(), user, projectRoom(project)); err != nil {
		s.unavailable(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// announce pushes to every member connected, on every node.
func (s *service) announce(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Text string `json:"text"`
	}
	if err := decode(r, &in); err != nil || in.Text == "" || len(in.Text) > 500 {
		writeError(w, http.StatusBadRequest, "text is required (at most 500 bytes)")
		return
	}
	project := chi.URLParam(r, "id")
	// The ack of a REST call does not wait for delivery: Broadcast returns
	// once the broker took the message.
	err := s.gw.Hub().Broadcast(r.Context(), projectRoom(project), "announcement",
		map[string]string{"projectId": project, "text": in.Text, "by": caller(r).UserID})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *service) unavailable(w http.ResponseWriter, err error) {
	s.log.Error("push_failed", slog.String("error", err.Error()))
	writeError(w, http.StatusServiceUnavailable, "try again later")
}

// decode reads a small JSON body, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if dec.More() {
		return errors.New("body: trailing data")
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
