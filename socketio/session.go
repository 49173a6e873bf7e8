package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	wsproto "github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/socketio/internal/eio"
	"github.com/wsgate/wsgate/socketio/internal/engine"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// session is the Socket.IO side of one Engine.IO session: it decodes the
// session's packets and serves each namespace the client joins as a
// connection of that namespace's hub.
//
// The engine calls Message one packet at a time, and Closed after the last
// of them: dec and the CONNECT and DISCONNECT bookkeeping belong to those
// calls. mu guards the namespace table, which sockets closed by their hub
// (from the hub's goroutines) also leave.
type session struct {
	srv     *Server
	eng     *engine.Session
	hs      handshake    // what the namespaces' hubs take from the handshake
	release func()       // gives back the handshake's in-flight slots (guard.Limits)
	dec     *sio.Decoder // owned by Message

	mu      sync.Mutex            // guards the fields below
	sockets []*socket             // the joined namespaces, a handful at most
	timer   *time.Timer           // ConnectTimeout; nil once a namespace is joined
	closed  bool                  // Closed was called: no socket is added any more
	failed  string                // the reason of a close the session made, for the hubs' logs
	acks    map[uint64]pendingAck // EmitWithAck calls awaiting the client, by ack id
	ackSeq  uint64                // the next ack id
	parked  chan struct{}         // closed (closedChan) while acks is not empty; see awaiting
}

var _ engine.Receiver = (*session)(nil)

// keptHeaders are the request headers a session keeps for its CONNECTs: the
// credential sources of auth.Extractor, what the hub logs and the trace
// context. The rest of the handshake request is not kept.
var keptHeaders = [...]string{
	"Authorization", "Cookie", "Sec-Websocket-Protocol",
	"Origin", "User-Agent", "X-Request-Id", "X-Forwarded-For",
	"Traceparent", "Tracestate", "Baggage",
}

// handshake is what a session keeps of the request that opened it, for
// the hubs its CONNECTs reach: the request's values without its
// cancellation, and no body or connection state.
type handshake struct {
	ctx        context.Context
	method     string
	path       string
	rawQuery   string
	host       string
	remoteAddr string
	// header holds the kept headers as name, value pairs: an idle session
	// should not pay for a map.
	header []string
}

func keepHandshake(r *http.Request) handshake {
	h := handshake{
		ctx: context.WithoutCancel(r.Context()), method: r.Method,
		path: r.URL.Path, rawQuery: r.URL.RawQuery, host: r.Host, remoteAddr: r.RemoteAddr,
	}
	n := 0
	for _, name := range keptHeaders {
		n += 2 * len(r.Header[name])
	}
	if n > 0 {
		h.header = make([]string, 0, n)
		for _, name := range keptHeaders {
			for _, v := range r.Header[name] {
				h.header = append(h.header, name, v)
			}
		}
	}
	return h
}

// request rebuilds the handshake request for a CONNECT; the hub keeps none
// of it.
func (h handshake) request() *http.Request {
	r := &http.Request{
		Method:     h.method,
		URL:        &url.URL{Path: h.path, RawQuery: h.rawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(h.header)/2),
		Host:       h.host,
		RemoteAddr: h.remoteAddr,
	}
	for i := 0; i+1 < len(h.header); i += 2 {
		r.Header[h.header[i]] = append(r.Header[h.header[i]], h.header[i+1])
	}
	return r.WithContext(h.ctx)
}

// Message implements engine.Receiver: one Engine.IO message, text or
// binary, decoded and, once a packet is complete, handled.
//
// A CONNECT (decoding, authentication, admission, the welcome) is handled
// on a goroutine of its own, which Message waits for: it is the one packet
// every connection sends, and run on the caller — a WebSocket's reader —
// it would leave that goroutine with twice the stack for the rest of an
// idle connection's life (4 KiB instead of 2).
func (s *session) Message(p eio.Packet) {
	if p.Binary || len(p.Data) == 0 || p.Data[0] != '0'+byte(sio.Connect) {
		s.message(p)
		return
	}
	done := make(chan struct{})
	var failure any
	go func() {
		defer close(done)
		defer func() {
			// The engine recovers the panics of Message: this one is
			// handed back to it, with the stack where it happened.
			if v := recover(); v != nil {
				failure = fmt.Sprintf("%v\n%s", v, debug.Stack())
			}
		}()
		s.message(p)
	}()
	<-done
	if failure != nil {
		panic(failure)
	}
}

func (s *session) message(p eio.Packet) {
	var pkt sio.Packet
	var ok bool
	var err error
	if p.Binary {
		// Attachments outlive this call: the packet waits for the rest.
		pkt, ok, err = s.dec.DecodeBinary(bytes.Clone(p.Data))
	} else {
		text := p.Data
		if len(text) > 0 && (text[0] == '0'+byte(sio.BinaryEvent) || text[0] == '0'+byte(sio.BinaryAck)) {
			text = bytes.Clone(text) // so does a binary packet's text
		}
		pkt, ok, err = s.dec.DecodeText(text)
	}
	switch {
	case err != nil:
		s.fail("invalid_packet", wire.StatusPolicyViolation, err)
	case ok:
		s.handle(&pkt)
	}
}

// handle acts on one complete packet, as the reference server does: a
// packet for a namespace the client has not joined, other than CONNECT,
// ends the session, and so does a CONNECT_ERROR from a client.
func (s *session) handle(p *sio.Packet) {
	if p.Type == sio.Connect {
		s.connect(p)
		return
	}
	k := s.socket(p.Namespace)
	switch {
	case k == nil:
		s.fail("namespace_not_joined", wire.StatusPolicyViolation, errors.New(p.Type.String()+" for a namespace not joined"))
	case p.Type == sio.Disconnect:
		s.disconnect(k)
	case !s.fits(k, p):
	case p.Type.IsEvent():
		s.event(k, p)
	case p.Type.IsAck():
		s.acked(k, p)
	case p.Type == sio.ConnectError:
		s.fail("invalid_packet", wire.StatusPolicyViolation, errors.New("CONNECT_ERROR from a client"))
	}
}

// connect joins the namespace of a CONNECT: its hub authenticates the
// credential and admits the connection, or the client gets CONNECT_ERROR.
func (s *session) connect(p *sio.Packet) {
	ns := s.srv.spaces[p.Namespace]
	if ns == nil {
		s.send(connectError(p.Namespace, "Invalid namespace", ""))
		return
	}
	if s.socket(p.Namespace) != nil {
		s.fail("invalid_packet", wire.StatusPolicyViolation, errors.New("CONNECT for a namespace already joined"))
		return
	}
	k := &socket{sess: s, nsp: ns}
	// The socket rides in the context the connection's handlers derive
	// from, for EmitWithAck.
	r := s.hs.request()
	r = r.WithContext(context.WithValue(r.Context(), socketKey{}, k))
	cred := bridge.Credential{Token: s.srv.opts.AuthToken(p.Data), Request: r}
	var sink bridge.Sink = k
	if rc := s.srv.opts.Recovery; rc != nil {
		k.tr = &tracked{socket: k, rc: rc, pid: newPID(), gen: newGen()}
		k.tr.resume, k.tr.taken = s.srv.resumeOf(p.Namespace, p.Data)
		cred.Resume = k.tr.resume
		sink = k.tr
	}
	conn, err := bridge.Connect(ns.hub, cred, ns.codec, sink)
	if err != nil {
		if k.tr != nil {
			s.srv.restore(k.tr.taken) // the client may try again
		}
		s.refused(p.Namespace, err)
		return
	}
	if !k.attached(conn) {
		return // its hub closed it already
	}
	if !s.add(k) {
		if c := k.end(); c != nil {
			c.Closed(s.reason(engine.ReasonServerClose))
		}
		return
	}

	if ev := s.srv.opts.ConnectEvent; ev != "" {
		payload := p.Data
		if len(payload) == 0 {
			payload = json.RawMessage("{}")
		} else if k.tr != nil {
			payload = withoutSession(payload)
		}
		s.dispatch(k, func() { conn.Handle(protocol.Inbound{Kind: protocol.KindEvent, Event: ev, Data: payload}) })
	}
}

// refused tells the client why its CONNECT was refused: CONNECT_ERROR
// with the wsgate code, which socket.io-client hands to connect_error and
// does not retry. A hub that is shutting down closes the session instead,
// so that the client reconnects, to another node.
func (s *session) refused(nsp string, err error) {
	var rej *wsproto.Refusal
	switch {
	case errors.As(err, &rej):
		s.send(connectError(nsp, rej.Message, rej.Code))
	case errors.Is(err, hub.ErrShuttingDown):
		s.eng.Close(wire.StatusServiceRestart)
	default:
		s.srv.log.Error("socketio_connect_failed", slog.String("session", s.eng.ID()), slog.String("namespace", nsp), slog.String("error", err.Error()))
		s.send(connectError(nsp, "internal error", wsproto.CodeInternal))
	}
}

// connectError encodes a CONNECT_ERROR, with data {"code":code} unless
// code is empty.
func connectError(nsp, message, code string) []wire.Frame {
	var data any
	if code != "" {
		data = map[string]string{"code": code}
	}
	p, err := sio.NewConnectError(nsp, message, data)
	if err != nil {
		return nil
	}
	text, err := p.AppendText(nil)
	if err != nil {
		return nil
	}
	return []wire.Frame{{Op: wire.OpText, Payload: text}}
}

// send queues the session's own packets (CONNECT_ERROR); one that does not
// fit is dropped, as the client is not reading.
func (s *session) send(frames []wire.Frame) {
	if len(frames) > 0 {
		_ = s.eng.Send(frames...)
	}
}

// disconnect leaves a namespace at the client's request: the hub releases
// the connection, the Engine.IO session stays.
func (s *session) disconnect(k *socket) {
	s.forget(k)
	s.failAcks(k)
	if c := k.end(); c != nil {
		c.Closed("client_closed")
	}
	if k.tr != nil {
		go k.tr.ended(true) // the client left the namespace
	}
}

// fits reports whether an event or ack is within its namespace's hub's
// MaxMessageBytes; a larger packet ends the session, as a WebSocket
// message over it ends a native connection.
func (s *session) fits(k *socket, p *sio.Packet) bool {
	if !p.Type.IsEvent() && !p.Type.IsAck() {
		return true
	}
	size := argsLen(p.Args)
	for _, a := range p.Attachments {
		size += len(a)
	}
	if int64(size) > k.nsp.maxBytes {
		s.fail("message_too_large", wire.StatusMessageTooBig, errors.New("packet over the namespace's MaxMessageBytes"))
		return false
	}
	return true
}

// event hands an event to the namespace's hub: a handler's, or a join or
// leave.
func (s *session) event(k *socket, p *sio.Packet) {
	conn := k.hubConn()
	in, err := s.srv.inbound(p)
	if p.Type == sio.Event {
		// The hub may handle it after this call returns (see dispatch),
		// when the engine reuses the packet's bytes; a binary packet's
		// were copied already.
		in.Data = bytes.Clone(in.Data)
	}
	if err != nil {
		s.dispatch(k, func() { conn.HandleInvalid(in, err) })
		return
	}
	s.dispatch(k, func() { conn.Handle(in) })
}

// Closed implements engine.Receiver: every namespace's connection ends
// with the session, and the handshake's in-flight slots are given back.
// The hubs are told from a goroutine of their own: the engine may call
// Closed from a Sink method the hub called under its locks.
func (s *session) Closed(info engine.CloseInfo) {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	sockets := s.sockets
	s.sockets = nil
	s.mu.Unlock()
	s.failAcks(nil)
	reason := s.reason(info.Reason)
	s.srv.release(func() {
		defer s.release()
		for _, k := range sockets {
			if c := k.end(); c != nil {
				c.Closed(reason)
			}
			if k.tr != nil {
				k.tr.ended(false) // the client may come back and resume
			}
		}
	})
}

// reason names how the session ended for the hubs' disconnect logs and
// metrics, in the vocabulary of native connections where there is one.
func (s *session) reason(r engine.Reason) string {
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if failed != "" {
		return failed
	}
	switch r {
	case engine.ReasonClientClose:
		return "client_closed"
	case engine.ReasonTransportClose:
		return "connection_lost"
	case engine.ReasonTransportError:
		return "transport_error"
	case engine.ReasonParseError:
		return "invalid_packet"
	case engine.ReasonPingTimeout:
		return "heartbeat_timeout"
	case engine.ReasonFlood:
		return "ping_flood"
	case engine.ReasonShutdown:
		return "shutdown"
	case engine.ReasonInternal:
		return "internal_error"
	}
	return closedReason
}

// fail ends the session for a client's protocol error (reason, for the
// hubs' logs), as the reference server does.
func (s *session) fail(reason string, code wire.StatusCode, err error) {
	s.mu.Lock()
	if s.failed == "" {
		s.failed = reason
	}
	s.mu.Unlock()
	s.srv.log.Info("socketio_protocol_error", slog.String("session", s.eng.ID()), slog.String("reason", reason), slog.String("error", err.Error()))
	s.eng.CloseNow(code)
}

// connectTimedOut closes a session that joined no namespace in time.
func (s *session) connectTimedOut() {
	s.mu.Lock()
	joined := s.timer == nil
	s.mu.Unlock()
	if !joined {
		s.fail("connect_timeout", wire.StatusPolicyViolation, errors.New("no namespace joined within ConnectTimeout"))
	}
}

func (s *session) socket(nsp string) *socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.sockets {
		if k.nsp.name == nsp {
			return k
		}
	}
	return nil
}

// add enters a joined namespace, unless the session has closed.
func (s *session) add(k *socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sockets = append(s.sockets, k)
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	return true
}

// forget removes a namespace's socket, if it is still joined.
func (s *session) forget(k *socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.sockets, k); i >= 0 {
		s.sockets = slices.Delete(s.sockets, i, i+1)
	}
}
