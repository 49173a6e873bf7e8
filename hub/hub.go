package hub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/go-playground/validator/v10"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/room"
)

// Hub is the WebSocket endpoint. It is an http.Handler: mount it on any mux,
// wrap it with guard middleware. Build one with New; the zero Hub is not usable.
type Hub struct {
	opts     Options
	log      *slog.Logger
	obs      Observer
	broker   adapter.Broker
	codec    protocol.Codec
	validate *validator.Validate
	index    *room.Index[*conn]
	subs     subscriptions
	pool     *wire.Pool
	// writerCfg is shared by every connection's writer.
	writerCfg wire.WriterConfig
	closing   atomic.Bool
	ownBroker bool          // the hub created the broker, so Shutdown closes it
	stopped   chan struct{} // closed when Shutdown starts

	stuck stuckHandlers

	streams map[string]adapter.StreamOptions // by room kind, from Options.History
	reads   historyReads

	handlersMu sync.RWMutex // guards handlers, middleware and validate's registrations
	handlers   map[string]*handler
	middleware []Middleware

	connsMu sync.RWMutex // guards conns and users
	conns   map[string]*conn
	users   map[string][]*conn // established connections by user id

	liveMu  sync.Mutex // guards live and the transition of closing to true
	live    int        // requests inside ServeHTTP past the shutdown check
	drained chan struct{}
}

// New returns a hub configured by opts, or an error if a required option is
// missing or a value is unsafe.
func New(opts Options) (*Hub, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	streams, err := streamOptions(opts.History)
	if err != nil {
		return nil, err
	}
	h := &Hub{
		opts:     opts,
		log:      opts.Logger,
		obs:      opts.Observer,
		broker:   opts.Broker,
		codec:    protocol.Native{},
		validate: newValidator(),
		index:    room.NewIndex[*conn](opts.MaxRoomsPerConn),
		handlers: make(map[string]*handler),
		conns:    make(map[string]*conn),
		users:    make(map[string][]*conn),
		drained:  make(chan struct{}),
		streams:  streams,
	}
	if h.broker == nil {
		h.broker = memory.New()
		h.ownBroker = true
	} else {
		h.ownBroker = opts.CloseBroker
	}
	h.stopped = make(chan struct{})
	h.subs.init(h)
	h.pool = wire.NewPool(0)
	h.writerCfg = wire.WriterConfig{
		MaxQueued:      opts.SendQueueMessages,
		MaxQueuedBytes: opts.SendQueueBytes,
		WriteTimeout:   opts.WriteTimeout,
		Pool:           h.pool,
	}
	if err := h.broker.Attach(h.deliver); err != nil {
		return nil, fmt.Errorf("hub: attach broker: %w", err)
	}
	// The all-nodes topic is reconciled like a room's: a broker that is
	// down now does not stop the hub from starting, only from being ready.
	if err := h.subs.syncAll(); err != nil {
		h.log.Warn("subscribe_failed", slog.String("topic", topicAll), slog.String("error", err.Error()))
		go h.subs.retryAll()
	}
	return h, nil
}

// enterRequest counts a request in unless the hub is shutting down.
func (h *Hub) enterRequest() bool {
	h.liveMu.Lock()
	defer h.liveMu.Unlock()
	if h.closing.Load() {
		return false
	}
	h.live++
	return true
}

func (h *Hub) exitRequest() {
	h.liveMu.Lock()
	defer h.liveMu.Unlock()
	h.live--
	if h.live == 0 && h.closing.Load() {
		close(h.drained)
	}
}

// register adds c to the node's connection table.
func (h *Hub) register(c *conn) {
	h.connsMu.Lock()
	h.conns[c.id] = c
	h.connsMu.Unlock()
}

func (h *Hub) unregister(c *conn) {
	h.connsMu.Lock()
	delete(h.conns, c.id)
	h.connsMu.Unlock()
}

func (h *Hub) lookup(connID string) *conn {
	h.connsMu.RLock()
	defer h.connsMu.RUnlock()
	return h.conns[connID]
}

// Connections returns the number of upgraded connections on this node,
// including those still waiting for first-message authentication.
func (h *Hub) Connections() int {
	h.connsMu.RLock()
	defer h.connsMu.RUnlock()
	return len(h.conns)
}

// Ready returns nil while the hub accepts connections, is subscribed to the
// topic every node listens on, and its broker is healthy; readiness probes
// report its error.
func (h *Hub) Ready(ctx context.Context) error {
	if h.closing.Load() {
		return ErrShuttingDown
	}
	if !h.subs.allOn() {
		return ErrNotSubscribed
	}
	return h.broker.Health(ctx)
}

// Shutdown stops accepting connections (new ones get 503), tells every client
// to go ("bye", reason "shutdown"), closes each with 1012 so it reconnects to
// another node, and waits for them to drain until ctx is done. Then it
// closes the broker if the hub created it (or Options.CloseBroker says so).
//
// If ctx is done first, the connections still open are dropped (they finish
// in the background) and Shutdown returns ctx.Err(). Like
// http.Server.Shutdown, a second call returns nil at once.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.liveMu.Lock()
	if h.closing.Load() {
		h.liveMu.Unlock()
		return nil
	}
	h.closing.Store(true)
	close(h.stopped)
	if h.live == 0 {
		close(h.drained)
	}
	h.liveMu.Unlock()
	for _, c := range h.snapshot() {
		c.setReason("shutdown")
		c.closeWith(CloseServiceRestart, "shutdown", "shutdown")
	}
	var err error
	select {
	case <-h.drained:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range h.snapshot() {
			c.abort()
		}
	}
	if h.ownBroker {
		if cerr := h.broker.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// snapshot returns the connections of this node.
func (h *Hub) snapshot() []*conn {
	h.connsMu.RLock()
	defer h.connsMu.RUnlock()
	all := make([]*conn, 0, len(h.conns))
	for _, c := range h.conns {
		all = append(all, c)
	}
	return all
}

// requestID returns the request's X-Request-ID when it is a plausible id
// (1-128 characters of [A-Za-z0-9._:-]); anything else is not logged, so the
// header cannot inject into log lines.
func requestID(r *http.Request) string {
	id := r.Header.Get("X-Request-ID")
	if len(id) == 0 || len(id) > 128 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return ""
		}
	}
	return id
}

// newID returns a random, URL-safe, 128-bit identifier.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// requestMeta is what the security log says about a connection.
type requestMeta struct {
	ip, userAgent string
	origin        string
	host, path    string
	user, tenant  string
	connID        string
	requestID     string // the caller's X-Request-ID, when well-formed
}

func (m requestMeta) attrs(extra ...any) []any {
	a := make([]any, 0, 6+len(extra))
	if m.connID != "" {
		a = append(a, slog.String("conn_id", m.connID))
	}
	if m.user != "" {
		a = append(a, slog.String("user", m.user))
	}
	if m.tenant != "" {
		a = append(a, slog.String("tenant", m.tenant))
	}
	if m.requestID != "" {
		a = append(a, slog.String("request_id", m.requestID))
	}
	a = append(a, slog.String("ip", m.ip), slog.String("user_agent", m.userAgent))
	return append(a, extra...)
}

// recoverPanic, deferred, logs a panic of user code (a Presence store, an
// Observer, a broker) on a goroutine of the hub's own instead of letting it
// end the process.
func (h *Hub) recoverPanic(where string, meta requestMeta) {
	if p := recover(); p != nil {
		h.log.Error("panic", meta.attrs(slog.String("in", where), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
	}
}
