package engine

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// Server serves Engine.IO v4 on one path: it is an http.Handler, mounted
// where clients expect it (by default /engine.io/, or /socket.io/ under
// Socket.IO).
type Server struct {
	opts   Options
	limits eio.Limits
	wcfg   wire.WriterConfig
	log    *slog.Logger

	mu       sync.Mutex // guards sessions and reserved
	sessions map[string]*Session
	reserved int // handshakes between their slot and their table entry

	closing   atomic.Bool
	bodyBytes atomic.Int64 // POST body bytes being read, bounded by BodyBudget
	conns     atomic.Int64 // WebSocket reader goroutines running
}

// New returns a Server, or an error when opts are invalid.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	pool := opts.Pool
	if pool == nil {
		pool = wire.NewPool(0)
	}
	return &Server{
		opts:   opts,
		limits: eio.Limits{MaxPayload: opts.MaxPayload, MaxPackets: opts.MaxPackets},
		// The writer holds a polling session's whole queue when it upgrades,
		// plus the engine's own packets (open, ping, probe answer).
		wcfg: wire.WriterConfig{
			MaxQueued:      opts.MaxQueued + engineFrames,
			MaxQueuedBytes: opts.MaxQueuedBytes + engineFrames*eio.SIDLen*4,
			WriteTimeout:   opts.WriteTimeout,
			Pool:           pool,
		},
		log:      opts.Logger,
		sessions: make(map[string]*Session),
	}, nil
}

// engineFrames is the room a writer keeps beyond the session's queue for
// the engine's own packets.
const engineFrames = 4

// ServeHTTP routes an Engine.IO request: Check first, whatever the
// request; then the reference server's checks in its order; then the
// handshake, or the session's polling or WebSocket handler.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q, qerr := eio.ParseQuery(r)
	if srv.opts.Check != nil {
		if err := srv.check(r, q.SID == ""); err != nil {
			writeRefusal(w, err)
			return
		}
	}
	if qerr != nil {
		writeRefusal(w, qerr)
		return
	}
	if q.SID == "" {
		srv.handshake(w, r, q)
		return
	}
	s := srv.lookup(q.SID)
	switch {
	case s == nil || s.expired():
		eio.WriteError(w, eio.CodeUnknownSID)
	case !q.EIO4:
		eio.WriteError(w, eio.CodeBadRequest)
	case q.Transport == eio.WebSocket && q.Upgrade:
		s.upgrade(w, r, q)
	case q.Transport == eio.WebSocket, q.Upgrade:
		// A WebSocket without the upgrade headers, or an upgrade that names
		// another transport: the crafted upgrades of the reference's
		// advisories end here.
		eio.WriteError(w, eio.CodeBadRequest)
	case r.Method == http.MethodGet:
		s.poll(w, r)
	case r.Method == http.MethodPost:
		s.post(w, r)
	default:
		eio.WriteError(w, eio.CodeBadRequest)
	}
}

// check runs Options.Check, recovering a panic as a refusal.
func (srv *Server) check(r *http.Request, handshake bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			srv.log.Error("check_panic", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = eio.CodeForbidden
		}
	}()
	return srv.opts.Check(r, handshake)
}

// writeRefusal answers a refused request: a *protocol.Refusal as it says,
// an Engine.IO code with its body, anything else as Forbidden.
func writeRefusal(w http.ResponseWriter, err error) {
	var rej *protocol.Refusal
	var code eio.ErrorCode
	switch {
	case errors.As(err, &rej):
		rej.Write(w)
	case errors.As(err, &code):
		eio.WriteError(w, code)
	default:
		eio.WriteError(w, eio.CodeForbidden)
	}
}

var (
	errShuttingDown = &protocol.Refusal{Status: http.StatusServiceUnavailable, Code: protocol.CodeUnavailable,
		Message: "server is shutting down", RetryAfter: 5 * time.Second}
	errFull = &protocol.Refusal{Status: http.StatusServiceUnavailable, Code: protocol.CodeUnavailable,
		Message: "server is full", RetryAfter: 5 * time.Second}
)

// handshake makes a session and answers with its open packet, over
// polling or as the first WebSocket frame.
func (srv *Server) handshake(w http.ResponseWriter, r *http.Request, q eio.Query) {
	if srv.closing.Load() {
		errShuttingDown.Write(w)
		return
	}
	if q.Transport == eio.WebSocket && wire.Check(r) != nil {
		// Refused before a session exists: Accept would fail later.
		eio.WriteError(w, eio.CodeBadRequest)
		return
	}
	if !srv.reserve() {
		errFull.Write(w)
		return
	}
	s := newSession(srv, q.Transport)
	recv, err := srv.open(s, r)
	if err != nil {
		srv.unreserve()
		writeRefusal(w, err)
		return
	}
	s.recv = recv
	if c := srv.opts.Cookie; c.Name != "" {
		http.SetCookie(w, c.cookie(r.TLS != nil))
	}
	if !srv.insert(s) {
		errInternal.Write(w) // closed by Open itself
		return
	}
	if q.Transport == eio.Polling {
		s.openPolling(w)
		return
	}
	s.openWebSocket(w, r, q)
}

// open runs Options.Open, recovering a panic as a refusal.
func (srv *Server) open(s *Session, r *http.Request) (recv Receiver, err error) {
	defer func() {
		if p := recover(); p != nil {
			srv.log.Error("open_panic", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			recv, err = nil, errInternal
		}
	}()
	recv, err = srv.opts.Open(s, r)
	if err == nil && recv == nil {
		err = errInternal
	}
	return recv, err
}

var errInternal = &protocol.Refusal{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error"}

// reserve takes a slot in the session table.
func (srv *Server) reserve() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.sessions)+srv.reserved >= srv.opts.MaxSessions {
		return false
	}
	srv.reserved++
	return true
}

func (srv *Server) unreserve() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.reserved--
}

// insert turns a reserved slot into s's table entry, unless s was closed
// meanwhile.
func (srv *Server) insert(s *Session) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.reserved--
	if s.closed.Load() {
		return false
	}
	srv.sessions[s.sid] = s
	return true
}

func (srv *Server) lookup(sid string) *Session {
	if !eio.ValidSID(sid) {
		return nil
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.sessions[sid]
}

func (srv *Server) remove(s *Session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.sessions[s.sid] == s {
		delete(srv.sessions, s.sid)
	}
}

// Len returns the number of sessions in the table.
func (srv *Server) Len() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sessions)
}

// Shutdown refuses new sessions (503), closes every session (WebSocket
// clients get close code 1012, polling clients the close packet, after
// what was queued for them) and waits until they are gone or ctx is done;
// then it closes what is left at once and returns ctx's error.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.closing.Store(true)
	for _, s := range srv.snapshot() {
		s.closeGracefully(wire.StatusServiceRestart, ReasonShutdown)
	}
	t := time.NewTicker(shutdownPoll)
	defer t.Stop()
	for srv.Len() > 0 || srv.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			for _, s := range srv.snapshot() {
				s.closeNow(ReasonShutdown, wsEnd{})
			}
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// shutdownPoll is how often Shutdown looks at the session table and the
// sockets while they deliver their last packets and close.
const shutdownPoll = 10 * time.Millisecond

func (srv *Server) snapshot() []*Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	all := make([]*Session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		all = append(all, s)
	}
	return all
}
