//go:build unix

package hub

import "syscall"

// canTryWrite reports whether sharedConn.tryWrite is available here.
const canTryWrite = true

// tryWrite writes as much of p as the socket takes now, without waiting:
// n < len(p) with a nil error means the socket buffer is full.
func (s *sharedConn) tryWrite(p []byte) (n int, err error) {
	var werr error
	rerr := s.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if werr != syscall.EINTR {
				return true // done, whatever happened: never wait for the poller
			}
		}
	})
	if n < 0 {
		n = 0
	}
	switch {
	case rerr != nil:
		return n, rerr // closed
	case werr == syscall.EAGAIN:
		return n, nil
	}
	return n, werr
}
