//go:build unix

package hub

import "syscall"

// canTryWrite reports whether poolWriter.tryWrite is available here.
const canTryWrite = true

// tryWrite writes as much of p to raw as the socket takes now, without
// waiting: n < len(p) with a nil error means the socket buffer is full.
func (w *poolWriter) tryWrite(raw syscall.RawConn, p []byte) (n int, err error) {
	w.p = p
	rerr := raw.Write(w.fn)
	n, err = max(w.n, 0), w.err
	w.p, w.err = nil, nil
	switch {
	case rerr != nil:
		return n, rerr // closed
	case err == syscall.EAGAIN:
		return n, nil
	}
	return n, err
}

// writeFD is the raw.Write callback: one write(2), retried on EINTR. It
// returns true whatever happened, so that Write never waits for the poller.
func (w *poolWriter) writeFD(fd uintptr) bool {
	for {
		w.n, w.err = syscall.Write(int(fd), w.p)
		if w.err != syscall.EINTR {
			return true
		}
	}
}
