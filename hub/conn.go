package hub

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/protocol"
)

// conn is one WebSocket connection. The read side (limiters, abuse counter,
// message sequence) is owned by the goroutine running serve; the send side is
// guarded by mu; identity and timers are shared and documented per field.
type conn struct {
	h       *Hub
	ws      *websocket.Conn
	nc      net.Conn    // the hijacked socket under ws
	shared  *sharedConn // nc shared with coder/websocket; nil if it compresses
	id      string
	meta    requestMeta
	started time.Time
	release func() // admission slot; called once by cleanup

	ctx    context.Context // done when the connection ends
	cancel context.CancelFunc

	ident   atomic.Pointer[auth.Identity] // nil until authenticated; replaced on refresh
	reason  atomic.Pointer[string]        // first recorded disconnect reason
	closeMu sync.Once                     // one close handshake per connection
	closeOK chan struct{}                 // closed when the close handshake is over

	mu          sync.Mutex // guards the send queue and the close request below
	queue       [][]byte
	queued      int // bytes in queue
	writing     bool
	closing     bool
	ready       bool // the welcome is queued: broadcasts are taken
	closeCode   websocket.StatusCode
	closeReason string
	dropped     int

	timerMu sync.Mutex // guards the timers
	pinger  *time.Timer
	expiry  *time.Timer
	idle    *time.Timer

	lastRead  atomic.Int64 // unix nanos of the last inbound message
	pingAbuse atomic.Int32
	pingFrom  atomic.Int64 // unix nanos when the current ping abuse window began
	pingLimit *rate.Limiter
	abandoned atomic.Int32 // handlers that timed out and still run

	// Owned by the read goroutine.
	limiters  map[string]*rate.Limiter
	msgLimit  *rate.Limiter
	abuseFrom time.Time
	abuseN    int
	seq       uint64
}

func newConn(h *Hub, meta requestMeta) *conn {
	c := &conn{
		h:         h,
		id:        newID(),
		started:   time.Now(),
		pingLimit: rate.NewLimiter(h.opts.ClientPingRate.Rate, h.opts.ClientPingRate.Burst),
		msgLimit:  rate.NewLimiter(h.opts.MessageRate.Rate, h.opts.MessageRate.Burst),
		closeOK:   make(chan struct{}),
	}
	meta.connID = c.id
	c.meta = meta
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// upgrade accepts the WebSocket with this connection's ping metering.
func (c *conn) upgrade(w http.ResponseWriter, r *http.Request) error {
	opts := c.h.accept
	opts.OnPingReceived = c.onPing
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &opts)
	if err != nil {
		return err
	}
	ws.SetReadLimit(c.h.opts.MaxMessageBytes)
	c.ws, c.nc, c.shared = ws, hw.nc, hw.shared
	return nil
}

// hijackWriter keeps the net.Conn coder/websocket hijacks, so the hub can
// bound writes with socket deadlines and abort with a close, instead of
// handing coder/websocket a cancellable context per read and write (each
// costs a timer registration, and on reads, heap held by every idle
// connection).
//
// Unless permessage-deflate was negotiated (coder/websocket must then
// compress every data frame), it also hands coder/websocket a sharedConn, so
// that the send queue can write text frames itself (see sharedConn).
type hijackWriter struct {
	http.ResponseWriter
	nc     net.Conn
	shared *sharedConn // nil when coder/websocket writes every frame
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nc, brw, err
	}
	w.nc = nc
	// The 101 response went out before the hijack (coder/websocket wrote
	// it through the ResponseWriter), so brw.Writer holds nothing yet.
	// coder/websocket reads from and closes the conn returned here, and
	// writes only through brw.Writer: the reads stay on nc directly.
	if w.Header().Get("Sec-WebSocket-Extensions") == "" && brw.Writer.Buffered() == 0 {
		w.shared = newSharedConn(nc)
		brw = bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.shared, controlBuffer))
	}
	return nc, brw, nil
}

// runDetached serves the connection on the goroutine ServeHTTP started for it, then
// gives back the request's in-flight slots (held) and Shutdown's count. A
// panic that escapes serve (handlers and policy callbacks are already
// recovered where they are called) is logged, not allowed to crash the
// process: net/http used to recover it when serve ran under ServeHTTP.
func (c *conn) runDetached(id *auth.Identity, held func()) {
	defer c.h.exitRequest()
	defer held()
	defer func() {
		if p := recover(); p != nil {
			c.h.log.Error("panic", c.meta.attrs(slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
		}
	}()
	c.serve(id)
}

// serve runs the connection until it ends. id is nil when the credential is
// expected in the first message.
func (c *conn) serve(id *auth.Identity) {
	h := c.h
	h.register(c)
	defer c.cleanup()
	c.lastRead.Store(time.Now().UnixNano())
	c.startHeartbeat()
	if h.closing.Load() {
		c.closeWith(websocket.StatusServiceRestart, "shutdown", "shutdown")
	}
	if id == nil {
		var ok bool
		if id, ok = c.firstMessageAuth(); !ok {
			return
		}
	}
	if !c.establish(*id) {
		return
	}
	c.readLoop()
}

// establish records the identity, joins the automatic rooms and welcomes the
// client.
func (c *conn) establish(id auth.Identity) bool {
	c.ident.Store(&id)
	c.meta.user, c.meta.tenant = id.UserID, id.TenantID
	for _, name := range c.h.opts.AutoRooms(id) {
		if err := c.h.join(c, name); err != nil {
			c.h.log.Error("auto_join_failed", c.meta.attrs(slog.String("room", name), slog.String("reason", err.Error()))...)
			c.setReason("auto_join_failed")
			c.closeWith(websocket.StatusInternalError, "internal error", "")
			return false
		}
	}
	c.scheduleExpiry(id.ExpiresAt)
	c.h.log.Info("connect", c.meta.attrs()...)
	c.h.obs.Connected()
	var exp int64
	if !id.ExpiresAt.IsZero() {
		exp = id.ExpiresAt.Unix()
	}
	// The welcome goes out once the automatic rooms are joined (a client may
	// act on it at once), and opens the connection to broadcasts in the same
	// critical section: none queued while joining can precede it.
	c.enqueue(c.h.codec.AppendWelcome(nil, protocol.Welcome{
		ConnID: c.id, UserID: id.UserID, ExpiresAt: exp,
		HeartbeatMS: c.h.opts.PingInterval.Milliseconds(),
	}), frameWelcome)
	return true
}

// firstMessageAuth waits up to AuthTimeout for an auth message.
func (c *conn) firstMessageAuth() (*auth.Identity, bool) {
	t := time.AfterFunc(c.h.opts.AuthTimeout, func() {
		c.setReason("auth_timeout")
		c.send(c.h.codec.AppendError(nil, 0, false, CodeUnauthorized, "authentication timeout"))
		c.closeWith(CloseUnauthorized, "authentication timeout", "")
	})
	defer t.Stop()
	frame, ok := c.readFrame()
	if !ok {
		return nil, false
	}
	in, err := c.h.codec.Decode(frame)
	if err != nil || in.Kind != protocol.KindAuth {
		c.refuseAuth(in, CodeUnauthorized, "authenticate first", "no_auth_message")
		return nil, false
	}
	id, err := c.h.opts.Authenticator.Authenticate(c.ctx, in.Token)
	if err != nil {
		code := CodeUnauthorized
		if errors.Is(err, auth.ErrTokenExpired) {
			code = CodeTokenExpired
		}
		c.refuseAuth(in, code, "invalid credentials", auth.Reason(err))
		return nil, false
	}
	c.meta.user, c.meta.tenant = id.UserID, id.TenantID
	release, err := c.h.admit(c.ctx, id, c.meta)
	if err != nil {
		c.setReason("connection_limit")
		c.closeWith(CloseConnectionLimit, "too many connections", "")
		return nil, false
	}
	c.release = release
	if in.HasID {
		c.send(c.h.codec.AppendAck(nil, in.ID, nil))
	}
	return &id, true
}

func (c *conn) refuseAuth(in protocol.Inbound, code, msg, reason string) {
	c.h.obs.AuthFailed(reason)
	c.h.log.Warn("auth_failed", c.meta.attrs(slog.String("source", auth.SourceMessage.String()), slog.String("reason", reason))...)
	c.setReason("unauthorized")
	c.send(c.h.codec.AppendError(nil, in.ID, in.HasID, code, msg))
	c.closeWith(CloseUnauthorized, "unauthorized", "")
}

// readLoop reads and handles messages until the connection fails or closes.
func (c *conn) readLoop() {
	for {
		frame, ok := c.readFrame()
		if !ok {
			return
		}
		if !c.msgLimit.Allow() {
			c.h.obs.MessageIn(UnknownEvent, "rate_limited")
			in, _ := c.h.codec.Decode(frame) // for the id only: the answer carries it (R3)
			c.rateLimited(in, "")
			continue
		}
		c.handle(frame)
	}
}

// readFrame reads one text message, enforcing UTF-8. ok is false when the
// connection is over.
func (c *conn) readFrame() (frame []byte, ok bool) {
	// No deadline or cancellation here: abort closes the socket, which ends
	// the read (see hijackWriter).
	typ, frame, err := c.ws.Read(context.Background())
	if err != nil {
		c.noteReadError(err)
		return nil, false
	}
	c.lastRead.Store(time.Now().UnixNano())
	if typ != websocket.MessageText {
		c.setReason("binary_frame")
		c.closeWith(websocket.StatusUnsupportedData, "text frames only", "")
		return nil, false
	}
	if !utf8.Valid(frame) {
		c.setReason("invalid_utf8")
		c.closeWith(websocket.StatusInvalidFramePayloadData, "invalid UTF-8", "")
		return nil, false
	}
	return frame, true
}

func (c *conn) noteReadError(err error) {
	switch status := websocket.CloseStatus(err); {
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.setReason("message_too_large")
	case status != -1:
		c.setReason("client_closed")
	default:
		c.setReason("connection_lost")
	}
}

// onPing meters pings from the client. coder/websocket calls it on the read
// goroutine; returning false suppresses the pong.
func (c *conn) onPing(context.Context, []byte) bool {
	if c.pingLimit.Allow() {
		return true
	}
	now := time.Now().UnixNano()
	if from := c.pingFrom.Load(); now-from > int64(c.h.opts.AbuseWindow) && c.pingFrom.CompareAndSwap(from, now) {
		c.pingAbuse.Store(0)
	}
	if int(c.pingAbuse.Add(1)) > c.h.opts.AbuseLimit {
		c.setReason("ping_flood")
		// Closing performs a handshake that needs this goroutine to read.
		go c.closeWith(websocket.StatusPolicyViolation, "ping flood", "")
	}
	return false
}

// startHeartbeat schedules the server ping and, if configured, the idle check.
func (c *conn) startHeartbeat() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	c.pinger = time.AfterFunc(c.h.opts.PingInterval, c.ping)
	if c.h.opts.IdleTimeout > 0 {
		c.idle = time.AfterFunc(c.h.opts.IdleTimeout, c.checkIdle)
	}
}

func (c *conn) ping() {
	ctx, cancel := context.WithTimeout(c.ctx, c.h.opts.PongTimeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		if c.ctx.Err() == nil {
			c.setReason("heartbeat_timeout")
			c.abort()
		}
		return
	}
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.ctx.Err() == nil {
		c.pinger.Reset(c.h.opts.PingInterval)
	}
}

func (c *conn) checkIdle() {
	since := time.Since(time.Unix(0, c.lastRead.Load()))
	if since >= c.h.opts.IdleTimeout {
		c.setReason("idle_timeout")
		c.closeWith(CloseIdle, "idle timeout", "idle")
		return
	}
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.ctx.Err() == nil {
		c.idle.Reset(c.h.opts.IdleTimeout - since)
	}
}

// scheduleExpiry arms (or re-arms after a refresh) the close at token expiry.
func (c *conn) scheduleExpiry(at time.Time) {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	if at.IsZero() || c.ctx.Err() != nil {
		return
	}
	c.expiry = time.AfterFunc(time.Until(at), c.expire)
}

func (c *conn) expire() {
	id := c.ident.Load()
	if id == nil || time.Now().Before(id.ExpiresAt) {
		return // refreshed in the meantime; scheduleExpiry re-armed the timer
	}
	c.setReason("token_expired")
	c.send(c.h.codec.AppendError(nil, 0, false, CodeTokenExpired, "token expired"))
	c.closeWith(CloseTokenExpired, "token expired", "token_expired")
}

// abort tears the connection down at once: cancelling the context the reader
// and writer use makes coder/websocket close the socket even while a close
// handshake is in progress (CloseNow would wait for it).
func (c *conn) abort() {
	c.cancel()
	if c.nc != nil {
		_ = c.nc.Close()
	}
}

func (c *conn) setReason(r string) { c.reason.CompareAndSwap(nil, &r) }

// cleanup releases everything the connection holds. It runs once, on the
// serve goroutine, whatever ended the connection.
func (c *conn) cleanup() {
	// A close the server asked for (error frame, bye, then close frame) is
	// let finish first, bounded by the write timeout.
	// An aborted connection (Shutdown's deadline, heartbeat timeout, write
	// failure) is not waited for: its handshake may hang on coder/websocket's
	// read lock for seconds.
	c.mu.Lock()
	pending := c.closeCode != 0 && c.ctx.Err() == nil
	c.mu.Unlock()
	if pending {
		t := time.NewTimer(c.h.opts.WriteTimeout)
		select {
		case <-c.closeOK:
		case <-t.C:
		}
		t.Stop()
	}
	c.abort()
	c.timerMu.Lock()
	for _, t := range []*time.Timer{c.pinger, c.expiry, c.idle} {
		if t != nil {
			t.Stop()
		}
	}
	c.timerMu.Unlock()
	c.mu.Lock()
	c.closing = true
	c.queue, c.queued = nil, 0
	dropped := c.dropped
	c.mu.Unlock()
	// The slot and the table entry are released even if user code in
	// leaveAll (a Presence store) panics.
	defer func() {
		c.h.unregister(c)
		if c.release != nil {
			c.release()
		}
	}()
	c.h.leaveAll(c)
	c.ws.CloseNow()
	reason := "unknown"
	if r := c.reason.Load(); r != nil {
		reason = *r
	}
	if c.ident.Load() != nil {
		c.h.obs.Disconnected(reason, time.Since(c.started))
		c.h.log.Info("disconnect", c.meta.attrs(
			slog.String("reason", reason),
			slog.Duration("duration", time.Since(c.started)),
			slog.Int("dropped", dropped))...)
	}
}

// identity returns the current identity; only valid after establish.
func (c *conn) identity() auth.Identity {
	if id := c.ident.Load(); id != nil {
		return *id
	}
	return auth.Identity{}
}
