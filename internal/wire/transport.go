package wire

import (
	"net"
	"time"
)

// Transport is the socket a Writer writes to: a net.Conn has both methods.
// Write blocks until p is written, the write deadline passes or the socket
// fails.
type Transport interface {
	Write(p []byte) (int, error)
	SetWriteDeadline(t time.Time) error
}

// TryWriter is implemented by transports that can write without blocking:
// TryWrite writes what the socket takes now and returns n < len(p) with a
// nil error when its buffer is full. Writers of such transports are served
// by the Pool; others write from a goroutine of their own.
type TryWriter interface {
	TryWrite(p []byte) (n int, err error)
}

// NewTransport returns the transport for a hijacked socket: one that can
// write without blocking for the standard library's own TCP and Unix sockets
// on platforms that support it, and nc itself otherwise (TLS, or a wrapper
// that merely embeds a socket to count, shape or encrypt its bytes, which a
// raw write would bypass).
func NewTransport(nc net.Conn) Transport {
	if t := newSocketTransport(nc); t != nil {
		return t
	}
	return nc
}
