package engine

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// reply is how a held GET is answered.
type reply uint8

const (
	replyNone       reply = iota
	replyPackets          // frames from the queue
	replyNoop             // "6": released by an upgrade or the client's close
	replyClose            // "1", after the rest of the queue when closing
	replyBadRequest       // 400: the session upgraded while the GET was held
	replyCancelled        // the client went away
)

// getWait is a held GET. Its reply is set, once, under the session's mu.
type getWait struct {
	wake  chan struct{} // capacity 1: a pending wake-up is never lost
	reply reply
}

func (g *getWait) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// answer sets g's reply unless one was set, and wakes it.
func (g *getWait) answer(r reply) {
	if g.reply == replyNone {
		g.reply = r
	}
	g.poke()
}

// raceHold bounds the wait that settles a race between two connections of
// one session. During an upgrade, a GET that finds nothing to answer waits
// this long before it is released with a noop: a client upgrading sends
// "5" on the WebSocket and stops polling, and a GET that races with that
// "5" is held long enough for it to arrive and is then refused (the
// session moved to the WebSocket), instead of being answered as if polling
// went on; the reference server's 100 ms noop check gives the same
// outcome. The client's close packet waits as long for the GET it races
// with (see clientClose).
const raceHold = 100 * time.Millisecond

// openPolling answers a polling handshake with the open packet.
func (s *Session) openPolling(w http.ResponseWriter) {
	s.mu.Lock()
	s.startHeartbeatLocked()
	s.mu.Unlock()
	body := eio.AppendOpen(make([]byte, 0, 128), s.handshake(eio.Polling))
	_ = writeText(w, http.NewResponseController(w), body, s.srv.opts.WriteTimeout)
}

// poll serves a GET: it answers at once with what is queued, or holds the
// request until something is (a ping comes within PingInterval), the
// session closes, or an upgrade releases it.
func (s *Session) poll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	switch {
	case s.state == stateClosed:
		s.mu.Unlock()
		eio.WriteError(w, eio.CodeUnknownSID)
		return
	case s.transport != eio.Polling:
		s.mu.Unlock()
		eio.WriteError(w, eio.CodeBadRequest)
		return
	case s.get != nil:
		// Overlapping GETs: the held one gets the close packet, this one a
		// 400, and the session closes, as the reference server does.
		s.mu.Unlock()
		s.closeNow(ReasonTransportError, wsEnd{})
		eio.WriteError(w, eio.CodeBadRequest)
		return
	case s.closeWait != nil:
		// The client's close arrived first and waits for this GET.
		close(s.closeWait)
		s.closeWait = nil
		s.mu.Unlock()
		_ = writeText(w, http.NewResponseController(w), []byte{'0' + byte(eio.Noop)}, s.srv.opts.WriteTimeout)
		return
	}
	g := &getWait{wake: make(chan struct{}, 1)}
	s.get = g
	s.mu.Unlock()

	rc := http.NewResponseController(w)
	// A held GET outlives a server-wide WriteTimeout; writeText sets our own.
	_ = rc.SetWriteDeadline(time.Time{})
	frames, rep := s.await(r.Context(), g)
	switch rep {
	case replyCancelled:
		s.closeNow(ReasonTransportClose, wsEnd{})
	case replyBadRequest:
		eio.WriteError(w, eio.CodeBadRequest)
	case replyNoop:
		_ = writeText(w, rc, []byte{'0' + byte(eio.Noop)}, s.srv.opts.WriteTimeout)
	default:
		if testHookTaken != nil {
			testHookTaken(r.Context())
		}
		s.deliver(r.Context(), w, rc, frames, rep == replyClose)
	}
}

// testHookTaken, set by tests only, runs between a GET taking its frames
// and writing them.
var testHookTaken func(ctx context.Context)

// testHookWritten, set by tests only, runs once a GET has written its
// frames.
var testHookWritten func(ctx context.Context)

// await holds g until it has an answer. The frames of a replyPackets or
// replyClose answer have moved from the queue to s.inflight.
func (s *Session) await(ctx context.Context, g *getWait) ([]wire.Frame, reply) {
	var hold <-chan time.Time
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if frames, rep := s.nextLocked(g); rep != replyNone {
			if s.get == g {
				s.get = nil
			}
			return frames, rep
		}
		if s.state == stateUpgrading && hold == nil {
			t := time.NewTimer(s.srv.opts.raceHold)
			defer t.Stop()
			hold = t.C
		}
		s.mu.Unlock()
		select {
		case <-g.wake:
			s.mu.Lock()
		case <-hold:
			s.mu.Lock()
			g.answer(replyNoop)
		case <-ctx.Done():
			s.mu.Lock()
			if g.reply == replyNone {
				g.reply = replyCancelled
			}
		}
	}
}

// nextLocked decides what g answers now, if anything: a reply set by
// someone else, queued frames (taken into s.inflight), or the close packet
// of a closing session.
func (s *Session) nextLocked(g *getWait) ([]wire.Frame, reply) {
	if g.reply != replyNone {
		return nil, g.reply
	}
	if len(s.queue) > 0 {
		frames := s.takeLocked()
		if s.state == stateClosing && len(s.queue) == 0 {
			return frames, replyClose
		}
		return frames, replyPackets
	}
	if s.state == stateClosing {
		return nil, replyClose
	}
	return nil, replyNone
}

// takeLocked moves the frames of the next response from the queue to
// s.inflight: as many as fit in MaxPayload, and at least one.
func (s *Session) takeLocked() []wire.Frame {
	n, size := 0, 0
	for n < len(s.queue) {
		l := payloadLen(s.queue[n]) + 1
		if n > 0 && size+l > s.srv.opts.MaxPayload {
			break
		}
		size += l
		n++
	}
	frames := append([]wire.Frame(nil), s.queue[:n]...)
	for _, f := range frames {
		s.queueBytes -= len(f.Payload)
	}
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	if rest == 0 && cap(s.queue) > keptQueueCap {
		s.queue = nil
	}
	s.inflight = frames
	return frames
}

// keptQueueCap is the largest empty queue array a session keeps, so that
// an idle session holds no large one.
const keptQueueCap = 8

// payloadLen is a frame's length in a polling payload.
func payloadLen(f wire.Frame) int {
	if f.Op == wire.OpBinary {
		return eio.PayloadLen(eio.Packet{Type: eio.Message, Binary: true, Data: f.Payload})
	}
	return len(f.Payload)
}

// deliver writes frames (and the close packet when closing) as the GET's
// payload. They leave the session once the write has succeeded; if the
// client left before it, or the write fails, they go back to the head of
// the queue, where Closed counts them, and the session closes: the client
// that took them is gone. A client that goes once the whole response is
// written (it read it and closed its connection, as a client without
// keep-alive does at once) got them: its session goes on, as with the
// reference server, which stops watching the request once it answered.
func (s *Session) deliver(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, frames []wire.Frame, final bool) {
	body := appendPayload(make([]byte, 0, payloadSize(frames)+2), frames, final)
	err := ctx.Err()
	if err == nil {
		err = writeText(w, rc, body, s.srv.opts.WriteTimeout)
		if testHookWritten != nil {
			testHookWritten(ctx)
		}
	}
	s.mu.Lock()
	if err != nil && s.state != stateClosed {
		s.queue = append(s.inflight, s.queue...)
		for _, f := range s.inflight {
			s.queueBytes += len(f.Payload)
		}
	}
	s.inflight = nil
	closing := s.state == stateClosing
	reason := s.closeReason
	s.mu.Unlock()
	switch {
	case err != nil:
		s.closeNow(ReasonTransportClose, wsEnd{})
	case final && closing:
		s.closeNow(reason, wsEnd{})
	}
}

func payloadSize(frames []wire.Frame) int {
	n := 0
	for _, f := range frames {
		n += payloadLen(f) + 1
	}
	return n
}

// appendPayload appends frames as a polling payload: text frames as they
// are (a packet in its text form), binary ones as "b" and base64; then the
// close packet when final.
func appendPayload(dst []byte, frames []wire.Frame, final bool) []byte {
	for i, f := range frames {
		if i > 0 {
			dst = append(dst, eio.Separator)
		}
		if f.Op == wire.OpBinary {
			dst = append(dst, 'b')
			dst = base64.StdEncoding.AppendEncode(dst, f.Payload)
			continue
		}
		dst = append(dst, f.Payload...)
	}
	if final {
		if len(frames) > 0 {
			dst = append(dst, eio.Separator)
		}
		dst = append(dst, '0'+byte(eio.Close))
	}
	return dst
}

// writeText answers 200 with body as text/plain, within timeout, and
// flushes it so that a write error shows.
func writeText(w http.ResponseWriter, rc *http.ResponseController, body []byte, timeout time.Duration) error {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	_ = rc.SetWriteDeadline(time.Now().Add(timeout))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		return err
	}
	return rc.Flush()
}
