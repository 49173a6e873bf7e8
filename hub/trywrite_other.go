//go:build !unix

package hub

import "errors"

// canTryWrite reports whether sharedConn.tryWrite is available here: not on
// this platform, where every connection's writer is a goroutine of its own.
const canTryWrite = false

func (s *sharedConn) tryWrite([]byte) (int, error) {
	return 0, errors.New("hub: non-blocking writes are not available on this platform")
}
