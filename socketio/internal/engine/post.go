package engine

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// post serves a POST: the client's packets, separated by the record
// separator, delivered in order before the answer "ok". Anything wrong
// with the request closes the session, as the reference server does.
func (s *Session) post(w http.ResponseWriter, r *http.Request) {
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
	case s.posting:
		s.mu.Unlock()
		s.closeNow(ReasonTransportError, wsEnd{})
		eio.WriteError(w, eio.CodeBadRequest)
		return
	}
	s.posting = true
	closing := s.state == stateClosing
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()
	if closing {
		// The session is going away: what the client still says is not
		// acted on, and the answer does not make it fail before its GET
		// takes the close packet.
		writeOK(w)
		return
	}
	if r.Header.Get("Content-Type") == "application/octet-stream" {
		// Engine.IO v4 clients send text; the reference refuses binary.
		s.closeNow(ReasonParseError, wsEnd{})
		eio.WriteError(w, eio.CodeBadRequest)
		return
	}
	s.readAndReceive(w, r)
}

// readAndReceive reads the body, decodes it in full and hands its packets
// to the session.
func (s *Session) readAndReceive(w http.ResponseWriter, r *http.Request) {
	body, release, err := s.srv.readBody(w, r)
	defer release()
	if err != nil {
		reason := ReasonParseError
		if errors.Is(err, errBodyTimeout) {
			reason = ReasonTransportError
		}
		s.closeNow(reason, wsEnd{})
		writeBodyError(w, err)
		return
	}
	pp := packetSlices.Get().(*[]eio.Packet)
	defer func() {
		clear(*pp)
		*pp = (*pp)[:0]
		packetSlices.Put(pp)
	}()
	packets, err := eio.DecodePayload(*pp, body, s.srv.limits)
	*pp = packets
	if err != nil {
		s.closeNow(ReasonParseError, wsEnd{})
		if errors.Is(err, eio.ErrTooLarge) {
			writeStatus(w, http.StatusRequestEntityTooLarge)
			return
		}
		eio.WriteError(w, eio.CodeBadRequest)
		return
	}
	if s.beginDeliver() {
		for _, p := range packets {
			if !s.receive(p) {
				break
			}
		}
		s.endDeliver()
	}
	writeOK(w)
}

var packetSlices = sync.Pool{New: func() any { return new([]eio.Packet) }}

// writeOK is the reference server's answer to a POST.
func writeOK(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", "2")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
}

func writeStatus(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// Errors of readBody.
var (
	errBodyTooLarge = errors.New("engine: body over MaxPayload")
	errBodyBudget   = errors.New("engine: body budget exhausted")
	errBodyTimeout  = errors.New("engine: body not received within BodyTimeout")
)

var errBusy = &protocol.Refusal{Status: http.StatusServiceUnavailable, Code: protocol.CodeUnavailable,
	Message: "server is busy", RetryAfter: time.Second}

func writeBodyError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errBodyTooLarge):
		writeStatus(w, http.StatusRequestEntityTooLarge)
	case errors.Is(err, errBodyBudget):
		errBusy.Write(w)
	case errors.Is(err, errBodyTimeout):
		writeStatus(w, http.StatusRequestTimeout)
	default:
		eio.WriteError(w, eio.CodeBadRequest)
	}
}

// smallBody is the capacity of the pooled body buffers: most POSTs (a
// pong, an event or two) fit, and larger ones get a buffer of their exact
// declared size.
const smallBody = 4 << 10

var smallBodies = sync.Pool{New: func() any { b := make([]byte, 0, smallBody); return &b }}

// readBody reads a POST body of at most MaxPayload bytes within
// BodyTimeout, after reserving its size in the server's BodyBudget: the
// declared Content-Length, or MaxPayload when there is none. release gives
// the reservation and the buffer back; the body is valid until then.
func (srv *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	limit := srv.opts.MaxPayload
	if r.ContentLength > int64(limit) {
		return nil, func() {}, errBodyTooLarge
	}
	reserve := int64(limit)
	if r.ContentLength >= 0 {
		reserve = r.ContentLength
	}
	if srv.bodyBytes.Add(reserve) > srv.opts.BodyBudget {
		srv.bodyBytes.Add(-reserve)
		return nil, func() {}, errBodyBudget
	}
	var pooled *[]byte
	var buf []byte
	if reserve <= smallBody {
		pooled = smallBodies.Get().(*[]byte)
		buf = (*pooled)[:0]
	} else if r.ContentLength >= 0 {
		buf = make([]byte, 0, reserve)
	} else {
		buf = make([]byte, 0, smallBody)
	}
	release = func() {
		srv.bodyBytes.Add(-reserve)
		if pooled != nil {
			*pooled = buf[:0]
			smallBodies.Put(pooled)
		}
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(srv.opts.BodyTimeout))
	buf, err = readAtMost(r.Body, buf, limit)
	if pooled != nil && cap(buf) > smallBody {
		pooled = nil // grew past the pool's size class: let it go
	}
	return buf, release, err
}

// readAtMost appends src to buf, failing once it holds more than limit
// bytes.
func readAtMost(src io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, errBodyTooLarge
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := src.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, errBodyTooLarge
		}
		switch {
		case err == io.EOF:
			return buf, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return buf, errBodyTimeout
		case err != nil:
			return buf, err
		}
	}
}
