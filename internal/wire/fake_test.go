package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeTransport is a socket whose behaviour the test scripts: each try or
// blocking write takes the next step, if any, and otherwise takes
// everything. Blocking writes can be held until the test lets them go.
type fakeTransport struct {
	mu       sync.Mutex
	out      bytes.Buffer
	steps    []step
	writes   []int // bytes per write call, tries and blocking alike
	tries    int
	blocking int
	hold     chan struct{} // when not nil, blocking writes wait on it
	deadline time.Time
	closed   bool
}

// step is what one write does: take at most n bytes (n < 0: all), then fail
// with err.
type step struct {
	n   int
	err error
}

func (f *fakeTransport) next() step {
	if len(f.steps) == 0 {
		return step{n: -1}
	}
	s := f.steps[0]
	f.steps = f.steps[1:]
	return s
}

func (f *fakeTransport) take(p []byte, s step) int {
	n := len(p)
	if s.n >= 0 && s.n < n {
		n = s.n
	}
	f.out.Write(p[:n])
	f.writes = append(f.writes, n)
	return n
}

func (f *fakeTransport) TryWrite(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.closed {
		return 0, errClosedSocket
	}
	s := f.next()
	n := f.take(p, s)
	if errors.Is(s.err, syscall.EAGAIN) {
		return n, nil // what socketTransport makes of EAGAIN
	}
	return n, s.err
}

func (f *fakeTransport) Write(p []byte) (int, error) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocking++
	if f.closed {
		return 0, errClosedSocket
	}
	s := f.next()
	n := f.take(p, s)
	if s.err == nil && n < len(p) {
		s.err = errShort
	}
	return n, s.err
}

func (f *fakeTransport) SetWriteDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadline = t
	return nil
}

func (f *fakeTransport) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.out.Bytes())
}

var (
	errClosedSocket = errors.New("fake: use of closed socket")
	errShort        = errors.New("fake: short write")
	errReset        = errors.New("fake: connection reset by peer")
)

// blockingOnly hides TryWrite, like a TLS connection.
type blockingOnly struct{ *fakeTransport }

func (b blockingOnly) Write(p []byte) (int, error)        { return b.fakeTransport.Write(p) }
func (b blockingOnly) SetWriteDeadline(t time.Time) error { return b.fakeTransport.SetWriteDeadline(t) }

// events records what a Writer reports.
type events struct {
	mu     sync.Mutex
	closes int
	fails  []error
	done   chan struct{} // closed at the first report
}

func newEvents() *events { return &events{done: make(chan struct{})} }

func (e *events) CloseSent() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closes++
	if e.closes+len(e.fails) == 1 {
		close(e.done)
	}
}

func (e *events) WriteFailed(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fails = append(e.fails, err)
	if e.closes+len(e.fails) == 1 {
		close(e.done)
	}
}

func (e *events) counts() (closes, fails int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closes, len(e.fails)
}

// sent is one frame as a client reads it.
type sent struct {
	fin, rsv1 bool
	op        Opcode
	payload   string
}

// parseServerFrames splits what a server wrote into frames, failing on
// anything a client would refuse: masked frames, reserved bits, a
// truncated end.
func parseServerFrames(t *testing.T, b []byte) []sent {
	t.Helper()
	var out []sent
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("truncated header: % x", b)
		}
		f := sent{fin: b[0]&finBit != 0, rsv1: b[0]&rsv1Bit != 0, op: Opcode(b[0] & opMask)}
		if b[0]&(rsv2Bit|rsv3Bit) != 0 || b[1]&maskBit != 0 {
			t.Fatalf("bad header % x", b[:2])
		}
		n, h := uint64(b[1]&0x7f), 2
		switch n {
		case 126:
			n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, h = binary.BigEndian.Uint64(b[2:]), 10
		}
		if uint64(len(b)-h) < n {
			t.Fatalf("truncated frame: want %d bytes, have %d", n, len(b)-h)
		}
		f.payload = string(b[h : h+int(n)])
		out = append(out, f)
		b = b[h+int(n):]
	}
	return out
}

func text(s string) Frame { return Frame{Op: OpText, Payload: []byte(s)} }
