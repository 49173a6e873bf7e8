package hub

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/room"
)

// conn is one WebSocket connection. Who owns what:
//   - the read goroutine (serve) owns in, the limiters, the abuse counters
//     and seq;
//   - out owns the socket's write side and its queue (see wire.Writer);
//   - timerMu guards the timers and the heartbeat state;
//   - the rest is set before serve starts or is atomic.
type conn struct {
	h        *Hub
	id       string
	codec    protocol.Codec
	compress bool           // permessage-deflate was negotiated
	ws       *wsConn        // the socket, for a connection of the hub's own endpoint; nil when bridged
	sink     sink           // where frames go: &out, or the bridging transport's
	bridged  bridge.Sink    // the bridging transport, nil for a WebSocket of our own
	tracker  bridge.Tracker // the bridging transport, when it keeps positions (see bridge.Tracker)
	prevIDs  []string       // the connections a Resume continues: their exclusions hold on replay
	meta     requestMeta
	started  time.Time
	release  func() // admission slot; called once by cleanup

	ctx    context.Context // done when the connection ends
	cancel context.CancelFunc

	ident      atomic.Pointer[auth.Identity] // nil until authenticated; replaced on refresh
	reason     atomic.Pointer[string]        // first recorded disconnect reason
	closing    atomic.Bool                   // a close was asked for: inbound data is ignored
	peerClosed atomic.Bool                   // the peer's close frame arrived
	done       chan struct{}                 // closed once the close frame is out or writing failed
	doneOnce   sync.Once
	closedOnce sync.Once // a bridged connection is cleaned up once

	stateMu sync.Mutex // guards values
	values  map[any]any

	autoMu sync.Mutex // guards auto
	auto   []string   // the automatic rooms, which the client cannot leave

	histMu  sync.Mutex // guards cursors and what they hold (see recovery.go)
	cursors []*cursor  // the rooms with history the connection receives

	timerMu      sync.Mutex // guards the timers and awaitingPong
	heartbeat    *time.Timer
	expiry       *time.Timer
	idle         *time.Timer
	awaitingPong bool

	lastRead atomic.Int64 // unix nanos of the last inbound message
	holds    atomic.Int32 // 1 for the connection, plus handlers outliving it: the last releases the slot
	dropped  atomic.Int32 // broadcasts dropped by the Drop policy

	// Owned by the read goroutine.
	limiters map[string]*rate.Limiter
	msgLimit *rate.Limiter // created on the first message
	ctlLimit *rate.Limiter // pings and pongs; created on the first one
	abuse    abuseWindow   // rate-limited messages
	ctlAbuse abuseWindow   // control frames over their rate
	seq      uint64
}

// wsConn is what a connection of the hub's own WebSocket endpoint has
// beyond what every connection has: its socket, the reader its goroutine
// owns, the writer that owns the socket's write side. A connection bridged
// from another transport has none of it.
type wsConn struct {
	nc  net.Conn // the hijacked socket; closed by abort only
	out wire.Writer
	in  wire.Reader // owned by the read goroutine

	drainTo      int64        // read goroutine: after an abuse close, stop reading past this input offset
	readDeadline atomic.Int64 // unix nanos of the read deadline set while closing, 0 before
}

// newConn wraps an upgraded socket; serve runs it. base is the context its
// handlers derive from.
func newConn(h *Hub, base context.Context, meta requestMeta, up wire.Upgraded) *conn {
	c := &conn{
		h:        h,
		id:       newID(),
		codec:    h.codec,
		compress: up.Compressed,
		started:  time.Now(),
		done:     make(chan struct{}),
	}
	c.holds.Store(1)
	meta.connID = c.id
	c.meta = meta
	c.ctx, c.cancel = context.WithCancel(base)
	c.ws = &wsConn{nc: up.Conn}
	c.ws.out.Init(wire.NewTransport(up.Conn), &h.writerCfg, c)
	c.sink = &c.ws.out
	c.ws.in.Reset(up.Conn, up.Buffered, wire.ReaderOptions{
		MaxMessageBytes: h.opts.MaxMessageBytes,
		Compressed:      up.Compressed,
	})
	return c
}

// runDetached serves the connection on the goroutine ServeHTTP started for
// it, then gives back the request's in-flight slots (held) and Shutdown's
// count. A panic that escapes serve (handlers and policy callbacks are
// already recovered where they are called) is logged, not allowed to crash
// the process.
func (c *conn) runDetached(id *auth.Identity, st startState, held func()) {
	defer c.finish(held)
	if st != established && !c.startReading(id, st) {
		return
	}
	c.readLoop()
}

// finish is the connection goroutine's last act: it logs a panic that
// escaped, releases everything the connection held, and gives back the
// request's in-flight slots (held) and Shutdown's count.
func (c *conn) finish(held func()) {
	if p := recover(); p != nil {
		c.h.log.Error("panic", c.meta.attrs(slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
	}
	defer c.h.exitRequest()
	defer held()
	defer c.h.recoverPanic("cleanup", c.meta)
	c.cleanup()
}

// startState says how far a connection got before its reader started.
type startState uint8

const (
	notStarted  startState = iota // the reader does everything
	established                   // welcomed: the reader only reads
	startFailed                   // the close is under way: the reader drains
)

// start registers the connection, arms its timers and, for an identity
// known from the request, establishes it. ServeHTTP calls it on the request
// goroutine, so that the reader goroutine starts afresh with the smallest
// stack and only ever runs the shallow read loop: an idle connection's stack
// is most of what it costs. A panic (in user code that is not recovered
// where it is called) fails the start instead of escaping.
func (c *conn) start(id auth.Identity) (st startState) {
	defer func() {
		if p := recover(); p != nil {
			c.h.log.Error("panic", c.meta.attrs(slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
			c.setReason("panic")
			c.closeWith(CloseInternalError, "internal error", "")
			st = startFailed
		}
	}()
	c.begin()
	if !c.establish(id) {
		return startFailed
	}
	return established
}

// begin registers the connection and arms its heartbeat.
func (c *conn) begin() {
	c.h.register(c)
	c.lastRead.Store(time.Now().UnixNano())
	c.startHeartbeat()
	if c.h.closing.Load() {
		c.closeWith(CloseServiceRestart, "shutdown", "shutdown")
	}
}

// startReading does, on the connection's goroutine, what start did not:
// everything for a credential expected in the first message, or the drain
// after a failed start. It reports whether the read loop should run.
//
//go:noinline
func (c *conn) startReading(id *auth.Identity, st startState) bool {
	if st == startFailed {
		c.drain()
		return false
	}
	c.begin()
	var authMsg *protocol.Inbound
	if id == nil {
		fid, in, ok := c.firstMessageAuth()
		if !ok {
			c.drain()
			return false
		}
		id, authMsg = fid, &in
	}
	if !c.establish(*id) {
		c.drain()
		return false
	}
	if authMsg != nil {
		// The welcome is out first, as the protocol promises; then the
		// answer to the auth message.
		c.ack(*authMsg)
	}
	return true
}

// establish records the identity, joins the automatic rooms and welcomes the
// client.
func (c *conn) establish(id auth.Identity) bool { return c.establishResumed(id, nil) }

// establishResumed is establish, resuming a session when resume is set: its
// rooms are joined again before the welcome, the transport is told whether
// the missed events of its rooms with history follow, and they do.
func (c *conn) establishResumed(id auth.Identity, resume *bridge.Resume) bool {
	c.ident.Store(&id)
	c.meta.user, c.meta.tenant = id.UserID, id.TenantID
	// Rooms with history are held back from before their subscription to
	// after the welcome, which carries their tops.
	holds := c.holdAuto(nil, c.h.userRoute(id.UserID))
	if err := c.h.addUser(c, id.UserID); err != nil {
		c.h.log.Error("subscribe_failed", c.meta.attrs(slog.String("reason", err.Error()))...)
		c.setReason("subscribe_failed")
		c.closeWith(CloseInternalError, "internal error", "")
		return false
	}
	auto, err := c.autoRooms(id)
	if err != nil {
		c.setReason("auto_rooms_failed")
		c.closeWith(CloseInternalError, "internal error", "")
		return false
	}
	c.setAuto(auto)
	for _, name := range auto {
		if room.Valid(name) {
			holds = c.holdAuto(holds, c.h.routeOf(name))
		}
		if err := c.h.join(c, name); err != nil {
			c.h.log.Error("auto_join_failed", c.meta.attrs(slog.String("room", name), slog.String("reason", err.Error()))...)
			c.setReason("auto_join_failed")
			c.closeWith(CloseInternalError, "internal error", "")
			return false
		}
	}
	var rs resumed
	if resume != nil {
		holds, rs = c.rejoin(id, holds, resume)
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
	var positions []protocol.RoomPosition
	if len(holds) > 0 {
		positions = c.readTops(holds)
		recoveryStep("positions")
	}
	if resume != nil {
		rs.decide(c, holds)
	}
	for _, a := range holds {
		if a.resumed && rs.ok {
			c.told(a.r.room, protocol.Position(*a.since))
		} else {
			c.told(a.r.room, a.top)
		}
	}
	if c.tracker != nil {
		c.tracker.Established(bridge.Established{ConnID: c.id, UserID: id.UserID, TenantID: id.TenantID, Recovered: rs.ok})
	}
	c.sendClass(wire.Open, &protocol.Message{Kind: protocol.MsgWelcome, Welcome: protocol.Welcome{
		ConnID: c.id, UserID: id.UserID, ExpiresAt: exp,
		HeartbeatMS: c.h.opts.PingInterval.Milliseconds(),
		Positions:   positions,
	}})
	if len(holds) > 0 {
		c.releaseAuto(holds, rs.ok)
	}
	if fn := c.h.opts.OnConnect; fn != nil {
		c.hook("OnConnect", func() { fn(c.info()) })
	}
	return true
}

// autoRooms returns the automatic rooms of id. An error, or a panic in the
// user's AutoRooms, is logged and returned.
func (c *conn) autoRooms(id auth.Identity) (rooms []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.h.log.Error("auto_rooms_panic", c.meta.attrs(slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
			err = errPanic
		}
	}()
	// Not a child of c.ctx, which would keep the bookkeeping of a
	// cancelled child for the rest of an idle connection's life.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.h.opts.HandlerTimeout)
	defer cancel()
	if rooms, err = c.h.opts.AutoRooms(ctx, id); err != nil {
		c.h.log.Error("auto_rooms_failed", c.meta.attrs(slog.String("error", err.Error()))...)
	}
	return rooms, err
}

// hook runs a connect or disconnect hook, recovering a panic.
func (c *conn) hook(name string, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			c.h.log.Error("hook_panic", c.meta.attrs(slog.String("hook", name), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
		}
	}()
	fn()
}

func (c *conn) setAuto(rooms []string) {
	c.autoMu.Lock()
	defer c.autoMu.Unlock()
	c.auto = rooms
}

func (c *conn) isAuto(name string) bool {
	c.autoMu.Lock()
	defer c.autoMu.Unlock()
	return slices.Contains(c.auto, name)
}

// forgetAuto lets the server's LeaveUser take an automatic room away.
func (c *conn) forgetAuto(name string) {
	c.autoMu.Lock()
	defer c.autoMu.Unlock()
	if i := slices.Index(c.auto, name); i >= 0 {
		c.auto = slices.Delete(slices.Clone(c.auto), i, i+1)
	}
}

// hold keeps the admission slot taken beyond the connection's end.
func (c *conn) hold() { c.holds.Add(1) }

// letGo drops a hold; the last one releases the admission slot.
func (c *conn) letGo() {
	if c.holds.Add(-1) == 0 && c.release != nil {
		c.release()
	}
}

// identity returns the current identity; only valid after establish.
func (c *conn) identity() auth.Identity {
	if id := c.ident.Load(); id != nil {
		return *id
	}
	return auth.Identity{}
}

func (c *conn) setReason(r string) { c.reason.CompareAndSwap(nil, &r) }

// CloseSent implements wire.Events: our close frame is out. If the peer's
// came first, the handshake is over; otherwise the reader waits a little
// for it (bounded by closeTimeout) before the socket goes.
func (c *conn) CloseSent() {
	c.markDone()
	if c.peerClosed.Load() {
		c.abort()
		return
	}
	c.readBy(time.Now().Add(closeTimeout))
}

// WriteFailed implements wire.Events: the socket failed or a slow peer let
// the write deadline pass. Nothing more can be written; the connection ends.
func (c *conn) WriteFailed(error) {
	c.setReason("write_failed")
	c.markDone()
	c.abort()
}

func (c *conn) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

// abort tears the connection down at once: closing the socket ends the
// read and any write in progress.
func (c *conn) abort() {
	c.cancel()
	if c.bridged != nil {
		c.bridged.Abort()
		return
	}
	nc := c.ws.nc
	if tc, ok := nc.(*tls.Conn); ok {
		// Not tls.Conn.Close, which writes close_notify and may wait for a
		// peer that stopped reading (5 s): the connection is being dropped.
		nc = tc.NetConn()
	}
	_ = nc.Close()
}

// cleanup releases everything the connection holds. It runs once, on the
// serve goroutine, whatever ended the connection.
func (c *conn) cleanup() {
	// A close the server asked for (error frame, bye, then close frame) is
	// let finish first, bounded by the write timeout. A bridged connection's
	// transport did that before it said the connection was over.
	if c.closing.Load() && c.bridged == nil {
		t := time.NewTimer(c.h.opts.WriteTimeout)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	c.abort()
	c.stopTimers()
	// The slot and the table entry are released even if user code in
	// leaveAll (a Presence store) panics; the slot only once no handler
	// of this connection still runs.
	defer func() {
		c.h.unregister(c)
		c.letGo()
	}()
	if id := c.ident.Load(); id != nil {
		c.h.removeUser(c, id.UserID)
	}
	c.h.leaveAll(c)
	reason := "unknown"
	if r := c.reason.Load(); r != nil {
		reason = *r
	}
	if c.ident.Load() != nil {
		c.h.obs.Disconnected(reason, time.Since(c.started))
		c.h.log.Info("disconnect", c.meta.attrs(
			slog.String("reason", reason),
			slog.Int64("duration_ms", time.Since(c.started).Milliseconds()),
			slog.Int("dropped", int(c.dropped.Load())))...)
		if fn := c.h.opts.OnDisconnect; fn != nil {
			c.hook("OnDisconnect", func() { fn(c.info(), reason) })
		}
	}
}
