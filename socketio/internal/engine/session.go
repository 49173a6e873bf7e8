package engine

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// Receiver is what a session tells its owner (the Socket.IO layer).
type Receiver interface {
	// Message is called with each message packet the client sends, text or
	// binary, in the order they arrived. Calls for one session never
	// overlap, whichever transport carried the packet, and none follows
	// Closed. p.Data is only valid during the call: copy what is kept.
	Message(p eio.Packet)
	// Closed is called once when the session ends, after the last Message
	// call has returned.
	Closed(info CloseInfo)
}

// CloseInfo says how a session ended.
type CloseInfo struct {
	Reason Reason
	// Unsent counts the frames queued for a polling client that no GET
	// delivered. Frames a WebSocket writer still held are not counted.
	Unsent int
}

// Reason says why a session closed; the values are the reference server's
// names where it has one.
type Reason string

// Reasons a session closes for.
const (
	// ReasonClientClose: the client sent the close packet.
	ReasonClientClose Reason = "client close"
	// ReasonTransportClose: the connection closed or was lost (a WebSocket
	// closed, a held GET abandoned by its client, a failed response).
	ReasonTransportClose Reason = "transport close"
	// ReasonTransportError: the client broke the transport's rules
	// (overlapping GETs or POSTs, a body it could not send in time).
	ReasonTransportError Reason = "transport error"
	// ReasonParseError: a packet or payload that does not decode, or is
	// over the limits.
	ReasonParseError Reason = "parse error"
	// ReasonPingTimeout: no pong within PingTimeout of a ping.
	ReasonPingTimeout Reason = "ping timeout"
	// ReasonFlood: control frames or heartbeat packets over their rate.
	ReasonFlood Reason = "control flood"
	// ReasonServerClose: Session.Close.
	ReasonServerClose Reason = "server close"
	// ReasonShutdown: Server.Shutdown.
	ReasonShutdown Reason = "server shutting down"
	// ReasonInternal: a Receiver panicked.
	ReasonInternal Reason = "internal error"
)

// Errors of Session.Send.
var (
	// ErrClosed: the session is closing or closed; nothing was queued.
	ErrClosed = errors.New("engine: session closed")
	// ErrFull: the unit would take the session's queue over MaxQueued or
	// MaxQueuedBytes; nothing was queued. The caller chooses between
	// dropping the unit and closing the session.
	ErrFull = errors.New("engine: send queue full")
	// ErrInvalidUnit: the frames are not a unit Send accepts; nothing was
	// queued.
	ErrInvalidUnit = errors.New("engine: invalid unit")
)

type state uint8

const (
	stateOpen      state = iota // polling or WebSocket, in use
	stateUpgrading              // polling, with a probe WebSocket
	stateClosing                // polling, waiting for a GET to take the rest and the close packet
	stateClosed
)

// Session is one Engine.IO session. Its methods are safe for concurrent
// use.
//
// Lock order: inMu, then mu, then a wire.Writer's lock; the Server's table
// lock is never held with any of them. No user code runs under mu; only
// Receiver.Message runs under inMu, which exists to serialize it.
type Session struct {
	srv  *Server
	sid  string // the bearer credential of the session: never logged nor exposed
	id   string // a log-safe id
	recv Receiver

	closed atomic.Bool // state == stateClosed, for checks without mu

	inMu sync.Mutex // serializes Receiver.Message calls

	mu            sync.Mutex // guards the fields below
	state         state
	transport     eio.Transport
	queue         []wire.Frame // polling: frames no GET has taken
	queueBytes    int
	inflight      []wire.Frame // polling: frames a GET is writing
	get           *getWait     // the GET being held, if any
	posting       bool         // a POST is being handled
	ws            *wsConn      // the WebSocket transport
	probe         *wsConn      // the probe socket of an upgrade in progress
	heartbeat     *time.Timer
	awaitingPong  bool
	nextPing      time.Time     // when the next ping is due, on the nominal schedule
	pongDue       time.Time     // while awaitingPong: when the session times out
	closeWait     chan struct{} // the client's close waits for the GET it races with
	upgradeTimer  *time.Timer
	closeTimer    *time.Timer
	closeReason   Reason // stateClosing: the reason the session will close with
	delivering    bool   // a goroutine holds inMu for Message calls
	notifyPending bool   // closed while delivering: the deliverer calls Closed
	info          CloseInfo
	ctl           *rate.Limiter // heartbeat packets and control frames; created on the first
}

func newSession(srv *Server, t eio.Transport) *Session {
	return &Session{srv: srv, sid: eio.NewSID(), id: newLogID(), transport: t}
}

// newLogID returns 64 random bits, enough to tell sessions apart in logs.
func newLogID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ID returns a random id for logs and metrics, unrelated to the session id
// the client presents (which is a credential and never leaves the engine).
func (s *Session) ID() string { return s.id }

// String describes s without its session id.
func (s *Session) String() string { return "engine.Session(" + s.id + ")" }

// Transport returns the transport in use: Polling until an upgrade
// completes, then WebSocket.
func (s *Session) Transport() eio.Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transport
}

// handshake returns the open packet's data for transport t.
func (s *Session) handshake(t eio.Transport) eio.Handshake {
	o := &s.srv.opts
	h := eio.Handshake{SID: s.sid, Upgrades: []string{}, PingInterval: o.PingInterval, PingTimeout: o.PingTimeout, MaxPayload: o.MaxPayload}
	if t == eio.Polling {
		h.Upgrades = []string{"websocket"}
	}
	return h
}

// Send queues one unit: the frames of one or more Engine.IO message
// packets, written in order and never split by another unit, queued or
// refused as a whole. A text frame is a message packet in its text form
// ("4" and the data), a binary frame a binary message's bytes; payloads
// must not change once queued (they may be shared with other sessions).
// Over polling the frames become a payload (binary in base64); over a
// WebSocket to a client that asked for base64, binary frames become
// base64 text frames. Text must not hold the record separator 0x1e
// (JSON never does): polling could not carry it.
func (s *Session) Send(frames ...wire.Frame) error { return s.SendBatch(nil, frames...) }

// SendBatch is Send for a fan-out: a WebSocket writer that must start is
// added to b (see wire.Batch) instead of being handed to the writer pool on
// its own. A nil b is Send.
func (s *Session) SendBatch(b *wire.Batch, frames ...wire.Frame) error {
	size, err := checkUnit(frames)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state >= stateClosing:
		return ErrClosed
	case s.ws != nil:
		switch s.ws.send(b, wire.Reply, frames) {
		case wire.Queued:
			return nil
		case wire.Full:
			return ErrFull
		}
		return ErrClosed
	}
	// Polling, or a WebSocket session before its open frame is out: the
	// queue goes to the socket after it.
	o := &s.srv.opts
	if len(s.queue)+len(frames) > o.MaxQueued || s.queueBytes+size > o.MaxQueuedBytes {
		return ErrFull
	}
	s.queueLocked(frames, size)
	return nil
}

// checkUnit validates a unit for Send and returns its payload bytes.
func checkUnit(frames []wire.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, ErrInvalidUnit
	}
	size := 0
	for _, f := range frames {
		switch {
		case f.Deflated:
			return 0, errors.Join(ErrInvalidUnit, errors.New("engine: deflated frames are not negotiated"))
		case f.Op == wire.OpText:
			if len(f.Payload) == 0 || f.Payload[0] != '0'+byte(eio.Message) {
				return 0, errors.Join(ErrInvalidUnit, errors.New("engine: a text frame must be a message packet"))
			}
			if bytes.IndexByte(f.Payload, eio.Separator) >= 0 {
				return 0, errors.Join(ErrInvalidUnit, errors.New("engine: text holds the record separator"))
			}
		case f.Op != wire.OpBinary:
			return 0, errors.Join(ErrInvalidUnit, errors.New("engine: only text and binary frames"))
		}
		size += len(f.Payload)
	}
	return size, nil
}

// queueLocked appends frames to the polling queue and wakes a held GET.
func (s *Session) queueLocked(frames []wire.Frame, size int) {
	s.queue = append(s.queue, frames...)
	s.queueBytes += size
	if s.get != nil {
		s.get.poke()
	}
}

// Static frames of the engine's own packets, shared by every session.
var (
	pingFrame   = wire.Frame{Op: wire.OpText, Payload: []byte{'0' + byte(eio.Ping)}}
	probeAnswer = wire.Frame{Op: wire.OpText, Payload: []byte("3probe")}
)

// sendEngineLocked queues one of the engine's own packets, outside the
// queue's bounds (they are few and small).
func (s *Session) sendEngineLocked(f wire.Frame) {
	if s.ws != nil {
		s.ws.send(nil, wire.Reply, []wire.Frame{f})
		return
	}
	s.queueLocked([]wire.Frame{f}, len(f.Payload))
}

// Close closes the session after what was queued: a WebSocket client
// gets the queued frames, then a close frame with code; a polling client
// gets them and the close packet in its next GET (within PingInterval
// plus PingTimeout, after which the session closes anyway). Later calls do
// nothing.
func (s *Session) Close(code wire.StatusCode) { s.closeGracefully(code, ReasonServerClose) }

// CloseNow closes the session at once, dropping what is queued: a
// WebSocket client gets a close frame with code ahead of anything still
// queued, a polling client the close packet in its held GET (or none), and
// the session id is forgotten at once. Later calls do nothing.
func (s *Session) CloseNow(code wire.StatusCode) {
	s.closeNow(ReasonServerClose, wsEnd{code: code})
}

// Abort drops the session at once, without a close frame or packet. Later
// calls do nothing.
func (s *Session) Abort() { s.closeNow(ReasonServerClose, wsEnd{}) }

func (s *Session) closeGracefully(code wire.StatusCode, reason Reason) {
	s.mu.Lock()
	if s.state >= stateClosing {
		s.mu.Unlock()
		return
	}
	if s.transport == eio.WebSocket {
		s.mu.Unlock()
		s.closeNow(reason, wsEnd{code: code, graceful: true})
		return
	}
	probe := s.dropProbeLocked()
	s.state, s.closeReason = stateClosing, reason
	stopTimer(s.heartbeat)
	if s.get != nil {
		s.get.poke()
	}
	o := &s.srv.opts
	s.closeTimer = time.AfterFunc(o.PingInterval+o.PingTimeout, func() { s.closeNow(reason, wsEnd{}) })
	s.mu.Unlock()
	if probe != nil {
		probe.closeFrame(wire.StatusNormalClosure, true)
	}
}

// wsEnd says how closeNow ends a WebSocket: code zero closes the socket at
// once; otherwise a close frame with code, after the queued frames when
// graceful, before them otherwise.
type wsEnd struct {
	code     wire.StatusCode
	graceful bool
}

// closeNow ends the session: removed from the table, timers stopped, a
// held GET answered with the close packet, the sockets closed, and
// Receiver.Closed called once. Only the first call counts.
func (s *Session) closeNow(reason Reason, end wsEnd) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	s.state = stateClosed
	s.closed.Store(true)
	s.info = CloseInfo{Reason: reason, Unsent: len(s.queue) + len(s.inflight)}
	stopTimer(s.heartbeat)
	stopTimer(s.upgradeTimer)
	stopTimer(s.closeTimer)
	clear(s.queue)
	s.queue, s.queueBytes = nil, 0
	if s.get != nil {
		s.get.answer(replyClose)
	}
	ws, probe := s.ws, s.dropProbeLocked()
	notify := !s.delivering
	s.notifyPending = !notify
	s.mu.Unlock()

	s.srv.remove(s)
	if probe != nil {
		probe.abort()
	}
	if ws != nil {
		ws.end(end)
	}
	if notify {
		s.notifyClosed()
	}
}

// dropProbeLocked forgets the probe socket of an upgrade in progress and
// returns it for the caller to close.
func (s *Session) dropProbeLocked() *wsConn {
	p := s.probe
	s.probe = nil
	stopTimer(s.upgradeTimer)
	if s.state == stateUpgrading {
		s.state = stateOpen
	}
	return p
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// notifyClosed calls Receiver.Closed, recovering a panic.
func (s *Session) notifyClosed() {
	defer s.recoverCallback("Closed")
	s.recv.Closed(s.info)
}

func (s *Session) recoverCallback(name string) {
	if p := recover(); p != nil {
		s.srv.log.Error("receiver_panic", slog.String("session", s.id), slog.String("callback", name),
			slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
		if name != "Closed" {
			s.closeNow(ReasonInternal, wsEnd{code: wire.StatusInternalError})
		}
	}
}

// startHeartbeatLocked arms the first ping, PingInterval after the open
// packet is produced.
func (s *Session) startHeartbeatLocked() {
	s.nextPing = time.Now().Add(s.srv.opts.PingInterval)
	s.heartbeat = time.AfterFunc(s.srv.opts.PingInterval, s.beat)
}

// beat sends a ping, or closes the session if the previous one went
// unanswered. It runs on a timer: no goroutine waits for the pong. Over
// polling the ping is queued like any packet and its timeout runs from
// then, whether or not a GET is there to take it. Deadlines follow the
// nominal schedule (the ping is due PingInterval after the open packet or
// the last pong, the pong PingTimeout after that), not the moment a late
// timer ran: expired checks the same deadlines when a request arrives.
func (s *Session) beat() {
	s.mu.Lock()
	if s.state >= stateClosing {
		s.mu.Unlock()
		return
	}
	if s.awaitingPong {
		s.mu.Unlock()
		s.closeNow(ReasonPingTimeout, wsEnd{})
		return
	}
	s.awaitingPong = true
	s.pongDue = s.nextPing.Add(s.srv.opts.PingTimeout)
	s.heartbeat.Reset(time.Until(s.pongDue))
	s.sendEngineLocked(pingFrame)
	s.mu.Unlock()
}

// gotPong records the client's pong; the next ping follows PingInterval
// after it. It reports whether a ping was waiting for it.
func (s *Session) gotPong() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.awaitingPong || s.state >= stateClosing {
		return false
	}
	s.awaitingPong = false
	s.nextPing = time.Now().Add(s.srv.opts.PingInterval)
	s.heartbeat.Reset(s.srv.opts.PingInterval)
	return true
}

// expired closes the session if its heartbeat deadline has passed and
// reports whether it did. Requests call it on arrival: a timer callback
// may run a little after its time, and a request arriving in between must
// find the session as the deadline left it (the reference server's event
// loop runs due timers before new requests).
func (s *Session) expired() bool {
	now := time.Now()
	s.mu.Lock()
	late := s.state < stateClosing && s.heartbeat != nil &&
		(s.awaitingPong && !now.Before(s.pongDue) ||
			!s.awaitingPong && !now.Before(s.nextPing.Add(s.srv.opts.PingTimeout)))
	s.mu.Unlock()
	if late {
		s.closeNow(ReasonPingTimeout, wsEnd{})
	}
	return late
}

// Rate of the control traffic a client may send: WebSocket pings and
// pongs, and Engine.IO packets other than messages that need no answer.
// An honest client sends one pong per PingInterval.
const (
	controlRate  = 5
	controlBurst = 20
)

// allowControl meters control traffic; over the rate the session closes.
func (s *Session) allowControl() bool {
	s.mu.Lock()
	if s.ctl == nil {
		s.ctl = rate.NewLimiter(controlRate, controlBurst)
	}
	ok := s.ctl.Allow()
	s.mu.Unlock()
	if !ok {
		s.srv.log.Warn("control_flood", slog.String("session", s.id))
		s.closeNow(ReasonFlood, wsEnd{code: wire.StatusPolicyViolation})
	}
	return ok
}

// beginDeliver takes the right to call Receiver.Message, unless the
// session is closed.
func (s *Session) beginDeliver() bool {
	s.inMu.Lock()
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		s.inMu.Unlock()
		return false
	}
	s.delivering = true
	s.mu.Unlock()
	return true
}

// endDeliver gives the right back, and calls Closed if the session closed
// meanwhile.
func (s *Session) endDeliver() {
	s.mu.Lock()
	s.delivering = false
	notify := s.notifyPending
	s.notifyPending = false
	s.mu.Unlock()
	s.inMu.Unlock()
	if notify {
		s.notifyClosed()
	}
}

// receive handles one packet from the client, between beginDeliver and
// endDeliver. It reports whether the caller may go on with the next.
func (s *Session) receive(p eio.Packet) bool {
	if s.closed.Load() {
		return false
	}
	switch p.Type {
	case eio.Message:
		s.message(p)
	case eio.Pong:
		if !s.gotPong() {
			return s.allowControl()
		}
	case eio.Close:
		s.clientClose()
		return false
	case eio.Ping:
		// Engine.IO v4 pings go from the server to the client.
		s.closeNow(ReasonParseError, wsEnd{code: wire.StatusPolicyViolation})
		return false
	default:
		// open, upgrade outside an upgrade, noop: ignored, as the reference
		// server does, but metered.
		return s.allowControl()
	}
	return !s.closed.Load()
}

func (s *Session) message(p eio.Packet) {
	defer s.recoverCallback("Message")
	s.recv.Message(p)
}

// clientClose handles the client's close packet: a held GET is released
// with a noop, and the session closes. Over polling, the client's close
// (a POST) and its pending GET travel on two connections and may be
// handled in either order: when no GET is held yet, the close waits up to
// raceHold for it, so that the GET gets its noop whichever came first.
func (s *Session) clientClose() {
	s.mu.Lock()
	if s.get != nil {
		s.get.answer(replyNoop)
	} else if s.transport == eio.Polling && s.state == stateOpen && s.ws == nil {
		ch := make(chan struct{})
		s.closeWait = ch
		s.mu.Unlock()
		t := time.NewTimer(s.srv.opts.raceHold)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
		s.mu.Lock()
		s.closeWait = nil
	}
	s.mu.Unlock()
	s.closeNow(ReasonClientClose, wsEnd{code: wire.StatusNormalClosure})
}
