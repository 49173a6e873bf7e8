//go:build !unix

package hub

import (
	"errors"
	"syscall"
)

// canTryWrite reports whether poolWriter.tryWrite is available here: not on
// this platform, where every connection's writer is a goroutine of its own.
const canTryWrite = false

func (w *poolWriter) tryWrite(syscall.RawConn, []byte) (int, error) {
	return 0, errors.New("hub: non-blocking writes are not available on this platform")
}

func (w *poolWriter) writeFD(uintptr) bool { return true }
