//go:build unix

package wire

import (
	"net"
	"syscall"
)

// socketTransport writes to a TCP or Unix socket's descriptor directly
// when asked to try, and through the net.Conn (with its deadline) when
// asked to block. Only the Writer's current owner calls it, so the fields
// of the write in progress need no lock.
type socketTransport struct {
	net.Conn
	raw syscall.RawConn
	fn  func(fd uintptr) bool // writeFD, bound once so that a try allocates nothing
	p   []byte
	n   int
	err error
}

func newSocketTransport(nc net.Conn) *socketTransport {
	var raw syscall.RawConn
	switch sc := nc.(type) {
	case *net.TCPConn:
		raw, _ = sc.SyscallConn()
	case *net.UnixConn:
		raw, _ = sc.SyscallConn()
	}
	if raw == nil {
		return nil
	}
	t := &socketTransport{Conn: nc, raw: raw}
	t.fn = t.writeFD
	return t
}

// TryWrite implements TryWriter with one write(2), retried on EINTR.
func (t *socketTransport) TryWrite(p []byte) (int, error) {
	t.p = p
	rerr := t.raw.Write(t.fn)
	n, err := max(t.n, 0), t.err
	t.p, t.err = nil, nil
	switch {
	case rerr != nil:
		return n, rerr // closed, or a write deadline that has passed
	case err == syscall.EAGAIN:
		return n, nil
	}
	return n, err
}

// writeFD returns true whatever happened, so that RawConn.Write never waits
// for the poller.
func (t *socketTransport) writeFD(fd uintptr) bool {
	for {
		t.n, t.err = syscall.Write(int(fd), t.p)
		if t.err != syscall.EINTR {
			return true
		}
	}
}
