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

func newSharedConn(nc net.Conn) *sharedConn {
	s := &sharedConn{Conn: nc}
	if canTryWrite {
		if sc, ok := nc.(syscall.Conn); ok {
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

var batchBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, batchBuffer)
	return &b
}}

// writeText writes frames as text frames, coalesced into as few writes as
// batchBuffer allows. It fails with net.ErrClosed once a close frame is out.
func (s *sharedConn) writeText(frames [][]byte) error {
	bp := batchBuffers.Get().(*[]byte)
	defer batchBuffers.Put(bp)
	buf := (*bp)[:0]

	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeTextLocked(frames, buf)
}

// writeTextLocked is writeText for a caller holding mu; buf is scratch.
func (s *sharedConn) writeTextLocked(frames [][]byte, buf []byte) error {
	if s.closeSent {
		return net.ErrClosed
	}
	for _, f := range frames {
		if len(buf) > 0 && len(buf)+maxFrameHeader+len(f) > cap(buf) {
			if _, err := s.Conn.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		buf = appendTextHeader(buf, len(f))
		if len(buf)+len(f) > cap(buf) {
			// Larger than the buffer: header and payload in one writev,
			// without copying the payload.
			bufs := net.Buffers{buf, f}
			if _, err := bufs.WriteTo(s.Conn); err != nil {
				return err
			}
			buf = buf[:0]
			continue
		}
		buf = append(buf, f...)
	}
	if len(buf) > 0 {
		if _, err := s.Conn.Write(buf); err != nil {
			return err
		}
	}
	return nil
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
