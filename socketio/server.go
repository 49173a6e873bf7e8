package socketio

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/inflight"
	"github.com/wsgate/wsgate/internal/protocol"
	wsproto "github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/socketio/internal/eio"
	"github.com/wsgate/wsgate/socketio/internal/engine"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// Server serves Socket.IO v5 over Engine.IO v4 (long-polling, WebSocket
// and the upgrade between them) on one path, each namespace by its hub. It
// is an http.Handler: mount it where socket.io-client looks,
// mux.Handle("/socket.io/", srv).
type Server struct {
	opts      Options
	eng       *engine.Server
	spaces    map[string]*namespace
	decLimits sio.Limits
	log       *slog.Logger
	opening   http.Handler // requests without a session id, through the guards
	serving   http.Handler // requests of a session, through the origin check

	// Goroutines telling hubs that connections are over, which Shutdown
	// waits for. A counter rather than a sync.WaitGroup: sessions end, and
	// add to it, while Shutdown waits.
	relMu   sync.Mutex    // guards the fields below
	relN    int           // release goroutines running
	relIdle chan struct{} // closed when relN drops to zero; nil when no one waits

	recov recoverables // the live sockets whose session records are refreshed
}

// namespace is one entry of Options.Namespaces, with what its sockets need.
type namespace struct {
	name     string
	hub      *hub.Hub
	codec    protocol.Codec // a codec; comparable, one value per namespace
	maxBytes int64          // the hub's MaxMessageBytes
}

// New validates opts and returns a Server. The largest MaxMessageBytes of
// the namespaces' hubs is announced as Engine.IO's maxPayload (the bound
// of one WebSocket message or polling body); each namespace's packets are
// held to its own hub's.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	srv := &Server{opts: opts, spaces: make(map[string]*namespace, len(opts.Namespaces)), log: opts.Logger}
	srv.recov.rc = opts.Recovery
	var maxBytes int64
	for nsp, h := range opts.Namespaces {
		st, err := bridge.SettingsOf(h)
		if err != nil {
			return nil, fmt.Errorf("socketio: namespace %q: %w", nsp, err)
		}
		srv.spaces[nsp] = &namespace{
			name: nsp, hub: h, maxBytes: st.MaxMessageBytes,
			codec: codec{nsp: nsp, mode: opts.Mode, errorEvent: opts.ErrorEvent},
		}
		maxBytes = max(maxBytes, st.MaxMessageBytes)
	}
	if maxBytes > math.MaxInt32 {
		return nil, fmt.Errorf("socketio: a hub's MaxMessageBytes %d is over what Engine.IO can announce", maxBytes)
	}
	srv.eng, err = engine.New(engine.Options{
		Open:           srv.open,
		PingInterval:   opts.PingInterval,
		PingTimeout:    opts.PingTimeout,
		UpgradeTimeout: opts.UpgradeTimeout,
		MaxPayload:     int(maxBytes),
		MaxSessions:    opts.MaxSessions,
		MaxQueued:      opts.SendQueueMessages,
		MaxQueuedBytes: opts.SendQueueBytes,
		WriteTimeout:   opts.WriteTimeout,
		Cookie:         engine.Cookie(opts.Cookie),
		Logger:         opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("socketio: %w", err)
	}
	srv.decLimits = sio.Limits{MaxAttachmentBytes: int(maxBytes)}
	srv.opening, srv.serving = srv.guards()
	return srv, nil
}

// guards chains the controls in front of the engine: every request passes
// the origin check, with or without a session id (the reference server
// checks only handshakes); a handshake also passes the throttle (first,
// so that every attempt counts) and the per-node limit, whose slot the
// session keeps until it ends.
func (srv *Server) guards() (opening, serving http.Handler) {
	origin := srv.loopbackOrigin
	if srv.opts.Origins != nil {
		origin = srv.opts.Origins.Middleware
	}
	mws := []func(http.Handler) http.Handler{}
	if t := srv.opts.Throttle; t != nil {
		mws = append(mws, t.Middleware)
	}
	mws = append(mws, origin)
	if l := srv.opts.Limits; l != nil {
		mws = append(mws, l.Middleware)
	}
	return guard.Chain(srv.eng, mws...), origin(srv.eng)
}

// ServeHTTP serves one Engine.IO request: a CORS preflight, a handshake
// (through the guards) or a request of a session (through the origin
// check).
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		srv.preflight(w, r)
		return
	}
	srv.cors(w, r)
	srv.sameOrigin(r)
	if eio.SessionID(r) == "" {
		srv.opening.ServeHTTP(w, r)
		return
	}
	srv.serving.ServeHTTP(w, r)
}

// open is the engine's Open: a new session, which keeps the handshake's
// in-flight slots (the per-node limit) until it ends.
func (srv *Server) open(es *engine.Session, r *http.Request) (engine.Receiver, error) {
	s := &session{
		srv:     srv,
		eng:     es,
		hs:      keepHandshake(r),
		release: inflight.Detach(r.Context()),
		dec:     sio.NewDecoder(srv.decLimits),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = time.AfterFunc(srv.opts.ConnectTimeout, s.connectTimedOut)
	return s, nil
}

// release runs fn, which tells hubs that connections are over, on a
// goroutine of its own that Shutdown waits for.
func (srv *Server) release(fn func()) {
	srv.relMu.Lock()
	srv.relN++
	srv.relMu.Unlock()
	go func() {
		defer srv.released()
		fn()
	}()
}

func (srv *Server) released() {
	srv.relMu.Lock()
	defer srv.relMu.Unlock()
	if srv.relN--; srv.relN == 0 && srv.relIdle != nil {
		close(srv.relIdle)
		srv.relIdle = nil
	}
}

// releasing returns a channel closed once no release goroutine runs.
func (srv *Server) releasing() <-chan struct{} {
	srv.relMu.Lock()
	defer srv.relMu.Unlock()
	if srv.relN == 0 {
		return closedChan
	}
	if srv.relIdle == nil {
		srv.relIdle = make(chan struct{})
	}
	return srv.relIdle
}

// Sessions returns the number of Engine.IO sessions, whether or not they
// joined a namespace.
func (srv *Server) Sessions() int { return srv.eng.Len() }

// Shutdown refuses new sessions (503) and closes every session so that
// its client reconnects, to another node (WebSocket clients get close code
// 1012, polling clients Engine.IO's close packet, each after what was
// queued for it); each namespace's hub is told its connections are over.
// It waits for that until ctx is done, then drops what is left and
// returns ctx's error. The hubs stay up: shut them down on their own.
func (srv *Server) Shutdown(ctx context.Context) error {
	err := srv.eng.Shutdown(ctx)
	select {
	case <-srv.releasing():
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// loopbackOrigin is the origin check without Options.Origins, the hub's
// default: an Origin naming a loopback host, over http or https.
func (srv *Server) loopbackOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if vals := r.Header.Values("Origin"); len(vals) != 1 || !isLoopbackOrigin(vals[0]) {
			srv.log.Warn("connection refused",
				slog.String("event", "origin_rejected"),
				slog.String("ip", remoteHost(r.RemoteAddr)),
				slog.String("origin", truncate(r.Header.Get("Origin"))),
				slog.String("user_agent", truncate(r.UserAgent())),
				slog.String("path", truncate(r.URL.Path)))
			(&wsproto.Refusal{Status: http.StatusForbidden, Code: wsproto.CodeForbidden, Message: "origin not allowed"}).Write(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin gives a browser's same-origin request that carries no Origin
// header the origin it was made from, for the origin check to judge.
// Browsers leave Origin out of same-origin GETs — every long-polling GET
// of a page served by this server — but say where a request comes from in
// Sec-Fetch-Site; "same-origin" means the page's origin is this request's
// own, scheme://Host. A request from another site without Origin (an
// <img> or <script> of another page) says "cross-site" or "same-site" and
// stays without one, as does a client that sends neither header: both are
// refused as before. The scheme is the connection's, or, behind a proxy
// that terminates TLS, the other one when only that one is allowed.
func (srv *Server) sameOrigin(r *http.Request) {
	if _, ok := r.Header["Origin"]; ok || r.Host == "" || r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		return
	}
	first, second := "http://", "https://"
	if r.TLS != nil {
		first, second = second, first
	}
	origin := first + r.Host
	if !srv.allowOrigin(origin) && srv.allowOrigin(second+r.Host) {
		origin = second + r.Host
	}
	r.Header.Set("Origin", origin)
}

// allowOrigin is the origin check's verdict on origin.
func (srv *Server) allowOrigin(origin string) bool {
	if srv.opts.Origins != nil {
		return srv.opts.Origins.Allow(origin)
	}
	return isLoopbackOrigin(origin)
}

func isLoopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Path != "" || u.RawQuery != "" {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback() && ip.Zone() == ""
}

func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// maxLogged bounds client-controlled values in the log.
const maxLogged = 256

func truncate(s string) string {
	if len(s) > maxLogged {
		return s[:maxLogged] + "…"
	}
	return s
}
