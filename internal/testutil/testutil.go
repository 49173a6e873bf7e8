// Package testutil holds what the project's tests share: polling a
// condition under a deadline, a log buffer that concurrent writers can
// share, and a self-signed certificate for TLS on loopback. Only tests
// import it.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// pollEvery is how often Eventually checks; the deadline bounds the wait.
const pollEvery = 5 * time.Millisecond

// Eventually polls cond until it holds, failing t if it does not within the
// given time.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyNil(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// EventuallyNil polls cond until it returns nil, failing t with the last
// error if it does not within the given time.
func EventuallyNil(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(pollEvery)
	}
}

type notYet struct{}

func (notYet) Error() string { return "condition not met" }

var errNotYet error = notYet{}

// SyncBuffer is a bytes.Buffer safe for concurrent use, for loggers that
// several goroutines write to while a test reads.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
