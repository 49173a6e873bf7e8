package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// Errors of EmitWithAck.
var (
	// ErrNotSocketIO: the context is not a handler's of a Socket.IO
	// connection (a native client's, or no handler's at all).
	ErrNotSocketIO = errors.New("socketio: not the context of a Socket.IO connection's handler")
	// ErrTooManyAcks: the session already awaits Options.MaxPendingAcks
	// acknowledgements; nothing was sent.
	ErrTooManyAcks = errors.New("socketio: too many acknowledgements awaited")
	// ErrSendQueueFull: the session's send queue had no room for the event;
	// nothing was sent.
	ErrSendQueueFull = errors.New("socketio: send queue full")
	// ErrDisconnected: the namespace or the session ended before the
	// client answered.
	ErrDisconnected = errors.New("socketio: disconnected before the acknowledgement")
)

// EmitWithAck sends event, with data as Emit sends it (a Binary with its
// attachments, anything else as JSON; no argument for nil), to the
// Socket.IO client of the handler whose context ctx is, asking for an
// acknowledgement, and waits for it: the client's
//
//	socket.on("confirm", (data, ack) => ack({ ok: true }))
//
// answers with {"ok":true}. The answer is the ACK's arguments mapped as
// the namespace's Mode maps an event's (the first argument by default;
// nil for none), binary attachments in them as base64 strings, which is
// how encoding/json fills a []byte.
//
// It waits until ctx is done, whose error it then returns wrapped: a
// handler's context ends at the hub's HandlerTimeout (5 s by default);
// ctx.WithContext(context.WithTimeout(ctx, d)) waits less. It fails at once
// with ErrNotSocketIO for a native connection, ErrTooManyAcks past
// Options.MaxPendingAcks, ErrSendQueueFull when the session's queue is
// full, and ErrDisconnected when the client leaves before answering. An
// answer that comes after EmitWithAck returned is ignored.
//
// While it waits, the session reads on, so that the answer can arrive
// after other messages of the client: those (up to 32) are handled once
// the waiting handler returns, in the order the client sent them. A
// client that waits for the answer to one of its own messages before it
// answers waits for that handler, which gives up at its deadline.
func EmitWithAck(ctx hub.Context, event string, data any) (json.RawMessage, error) {
	if ctx.Context == nil {
		return nil, ErrNotSocketIO
	}
	k, ok := ctx.Value(socketKey{}).(*socket)
	if !ok {
		return nil, ErrNotSocketIO
	}
	return k.emitWithAck(ctx, event, data)
}

// socketKey is the context key under which a namespace's socket is in the
// contexts of its connection's handlers.
type socketKey struct{}

// ackReply is what reaches a waiting EmitWithAck.
type ackReply struct {
	data json.RawMessage
	err  error
}

// pendingAck is an EmitWithAck waiting for the client, by ack id.
type pendingAck struct {
	k     *socket
	reply chan ackReply // buffered: the reader never waits for the caller
}

func (k *socket) emitWithAck(ctx context.Context, event string, data any) (json.RawMessage, error) {
	if !protocol.ValidEventName(event) || sio.IsReserved(event) {
		return nil, fmt.Errorf("socketio: invalid event name %q", event)
	}
	raw, attachments, err := marshalData(data)
	if err != nil {
		return nil, err
	}
	id, reply, err := k.sess.expect(k)
	if err != nil {
		return nil, err
	}
	defer k.sess.unexpect(id)
	p := sio.Packet{
		Type: sio.Event, Namespace: k.nsp.name, Event: event, ID: id, HasID: true,
		Args: codec{mode: k.sess.srv.opts.Mode}.args(raw), Attachments: attachments,
	}
	text, err := p.AppendText(nil)
	if err != nil {
		return nil, fmt.Errorf("socketio: %w", err)
	}
	frames := make([]wire.Frame, 0, 1+len(attachments))
	frames = append(frames, wire.Frame{Op: wire.OpText, Payload: text})
	for _, a := range attachments {
		frames = append(frames, wire.Frame{Op: wire.OpBinary, Payload: a})
	}
	switch k.Send(wire.Reply, frames...) {
	case wire.Queued:
	case wire.Full:
		return nil, ErrSendQueueFull
	default:
		return nil, ErrDisconnected
	}
	select {
	case r := <-reply:
		return r.data, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("socketio: no acknowledgement of %q: %w", event, ctx.Err())
	}
}

// marshalData encodes an event's data as the hub's Emit does, with the
// attachments of a Binary.
func marshalData(data any) (json.RawMessage, [][]byte, error) {
	if data == nil {
		return nil, nil, nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, nil, fmt.Errorf("socketio: encode: %w", err)
	}
	if b, ok := data.(Binary); ok {
		return raw, b.Attachments, nil
	}
	return raw, nil, nil
}

// expect registers an acknowledgement awaited from namespace k under a new
// ack id, unless the session awaits MaxPendingAcks already or is over.
func (s *session) expect(k *socket) (uint64, chan ackReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, nil, ErrDisconnected
	case len(s.acks) >= s.srv.opts.MaxPendingAcks:
		return 0, nil, ErrTooManyAcks
	}
	if s.acks == nil {
		s.acks = make(map[uint64]pendingAck, 1)
	}
	if len(s.acks) == 0 && s.parked != nil {
		close(s.parked) // a reader waiting in dispatch reads on
	}
	s.parked = closedChan
	id := s.ackSeq
	s.ackSeq++
	reply := make(chan ackReply, 1)
	s.acks[id] = pendingAck{k: k, reply: reply}
	return id, reply, nil
}

// unexpect forgets ack id once its caller stopped waiting.
func (s *session) unexpect(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetAckLocked(id)
}

func (s *session) forgetAckLocked(id uint64) {
	if _, ok := s.acks[id]; !ok {
		return
	}
	delete(s.acks, id)
	if len(s.acks) == 0 {
		s.parked = nil
	}
}

// awaiting returns a channel that is closed while an EmitWithAck of this
// session awaits the client's ACK.
func (s *session) awaiting() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parked == nil {
		s.parked = make(chan struct{})
	}
	return s.parked
}

// closedChan is the value of session.parked while acknowledgements are
// awaited.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// acked hands the client's ACK to the EmitWithAck awaiting it. An ACK for
// an id this session gave out answers nothing once its caller stopped
// waiting (it came too late) and is dropped, as the reference server does;
// an ACK for an id never given out, or from another namespace than the
// event's, is a message the hub refuses as invalid (rate-limited, and
// answered with INVALID_MESSAGE) so that unasked ACKs cannot flood the
// session for free.
func (s *session) acked(k *socket, p *sio.Packet) {
	s.mu.Lock()
	w, ok := s.acks[p.ID]
	if ok && w.k == k {
		s.forgetAckLocked(p.ID)
	}
	late := !ok && p.ID < s.ackSeq
	s.mu.Unlock()
	switch {
	case ok && w.k == k:
		w.reply <- ackReply{data: s.srv.ackData(p)}
	case !late:
		conn := k.hubConn()
		in := protocol.Inbound{Kind: protocol.KindEvent}
		s.dispatch(k, func() { conn.HandleInvalid(in, errors.New("an ACK that answers no event")) })
	}
}

// ackData maps an ACK's arguments as the namespace's Mode maps an event's,
// with every placeholder replaced by its bytes in base64. The result does
// not alias the packet.
func (srv *Server) ackData(p *sio.Packet) json.RawMessage {
	switch {
	case len(p.Args) == 0:
		return nil
	case srv.opts.Mode == FirstArgument, srv.opts.Mode == NestJS && len(p.Args) == 1:
		return bytes.Clone(p.ArgJSON(0))
	}
	return joinArgs(p.Args, p.ArgJSON)
}

// failAcks ends every EmitWithAck of namespace k (of every namespace when k
// is nil) with ErrDisconnected.
func (s *session) failAcks(k *socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, w := range s.acks {
		if k == nil || w.k == k {
			s.forgetAckLocked(id)
			w.reply <- ackReply{err: ErrDisconnected}
		}
	}
}
