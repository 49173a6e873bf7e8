package hub

import (
	"encoding/binary"
	"net"
	"sync"
	"syscall"
)

// sharedConn is the hijacked socket when no compression was negotiated. Two
// writers share it: coder/websocket, which writes control frames only (pongs
// from its read loop, the hub's pings, the close frame), and the hub's send
// queue, which writes text frames itself, as many per syscall as are queued.
// coder/websocket flushes once per message; a broadcast arriving while a
// connection's writer is busy would otherwise cost a write(2) per frame.
//
// Every Write from coder/websocket is one whole control frame: it flushes
// after each (control payloads are at most 125 bytes, its buffer holds
// controlBuffer), so holding mu per Write and per batch keeps the two
// writers' frames from interleaving.
type sharedConn struct {
	net.Conn
	raw syscall.RawConn // for non-blocking writes; nil where they are not available

	mu        sync.Mutex
	closeSent bool // a close frame is out: no data frame may follow (RFC 6455 5.5.1)
}

// newSharedConn wraps nc. Only the standard library's own socket types get
// non-blocking writes on the raw descriptor: a wrapper that merely embeds one
// (to count bytes, shape traffic, encrypt) would otherwise be bypassed.
func newSharedConn(nc net.Conn) *sharedConn {
	s := &sharedConn{Conn: nc}
	if canTryWrite {
		switch sc := nc.(type) {
		case *net.TCPConn:
			s.raw, _ = sc.SyscallConn()
		case *net.UnixConn:
			s.raw, _ = sc.SyscallConn()
		}
	}
	return s
}

// controlBuffer sizes the bufio.Writer coder/websocket gets: the largest
// control frame a server sends is 2 + 125 bytes. net/http hands out 4 KiB,
// which every idle connection would hold for nothing.
const controlBuffer = 256

// Write is coder/websocket's path to the socket: one control frame per call.
func (s *sharedConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p) > 0 && p[0]&0x0f == opClose {
		s.closeSent = true
	}
	return s.Conn.Write(p)
}

// WebSocket framing of server frames (RFC 6455 5.2): never masked.
const (
	opText         = 0x1
	opClose        = 0x8
	finBit         = 0x80
	maxFrameHeader = 10
)

// batchBuffer is the most one write(2) carries; frames beyond it go
// in further writes. A writer holds one while its batch is in the kernel, so
// this also bounds what a blocked writer pins beyond its queue.
const batchBuffer = 16 << 10

// appendFrames appends frames[i:] to buf as text frames while they fit in
// cap(buf), and returns buf and the index of the first frame left out. A
// frame too large for the empty buffer is left out at once (the returned
// index is i): the caller writes it on its own, without copying.
func appendFrames(buf []byte, frames [][]byte, i int) ([]byte, int) {
	for ; i < len(frames) && len(buf)+maxFrameHeader+len(frames[i]) <= cap(buf); i++ {
		buf = appendTextHeader(buf, len(frames[i]))
		buf = append(buf, frames[i]...)
	}
	return buf, i
}

// writeText writes frames as text frames, coalesced into writes of at most
// batchBuffer bytes (a larger frame goes out alone, header and payload in
// one writev). mu is held per write, not for the whole batch: a control
// frame (a pong, the close frame) waits for one write at most, not for a
// backlog draining to a slow reader — coder/websocket gives up on a control
// frame after 5 s. It fails with net.ErrClosed once a close frame is out.
func (s *sharedConn) writeText(frames [][]byte) error {
	w := poolWriters.Get().(*poolWriter)
	defer poolWriters.Put(w)
	for i := 0; i < len(frames); {
		buf, j := appendFrames(w.buf[:0], frames, i)
		var big []byte
		if j == i {
			big = frames[i]
			buf = appendTextHeader(buf, len(big))
			j++
		}
		if err := s.writeChunk(buf, big); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// writeChunk writes whole frames: buf, then big's payload if big is not nil.
func (s *sharedConn) writeChunk(buf, big []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeSent {
		return net.ErrClosed
	}
	if big == nil {
		_, err := s.Conn.Write(buf)
		return err
	}
	bufs := net.Buffers{buf, big}
	_, err := bufs.WriteTo(s.Conn)
	return err
}

// appendTextHeader appends the header of an unmasked, final text frame
// carrying n bytes.
func appendTextHeader(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, finBit|opText, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, finBit|opText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, finBit|opText, 127), uint64(n))
	}
}
