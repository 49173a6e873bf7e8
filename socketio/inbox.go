package socketio

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/wsgate/wsgate/internal/wire"
)

// inboxSize bounds the messages of one namespace queued for its hub while
// a handler waits for the client's acknowledgement (EmitWithAck): past it,
// the session's reader waits, as it always does otherwise.
const inboxSize = 32

// inbox hands one namespace's messages to its hub on a goroutine of its
// own, in the order the client sent them and one at a time, as
// bridge.Conn.Handle requires. The session's reader does not run the hub
// itself because a handler may wait, through EmitWithAck, for an ACK that
// only the reader can read: run on the reader, it would wait for itself
// until its deadline.
//
// The goroutine exists only while there is work: an idle namespace has
// none, and no queue either.
type inbox struct {
	mu      sync.Mutex // guards the fields below
	queue   chan job   // made on first use; at most inboxSize jobs
	running bool       // a goroutine drains queue
}

// job is one message for the hub; done is closed once it is handled (or
// dropped for a panic).
type job struct {
	run  func()
	done chan struct{}
}

// put queues j and makes sure a goroutine drains the queue. It waits while
// the queue is full: each job ends within its handler's deadline, so the
// wait does too.
func (b *inbox) put(j job, failed func(any)) {
	b.mu.Lock()
	if b.queue == nil {
		b.queue = make(chan job, inboxSize)
	}
	q := b.queue
	b.mu.Unlock()
	q <- j
	b.mu.Lock()
	if !b.running {
		b.running = true
		go b.drain(q, failed)
	}
	b.mu.Unlock()
}

// drain runs the queued jobs until the queue is empty. A job put after the
// last look (under mu) sees running false and starts another goroutine.
func (b *inbox) drain(q chan job, failed func(any)) {
	for {
		select {
		case j := <-q:
			runJob(j, failed)
			continue
		default:
		}
		b.mu.Lock()
		if len(q) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
	}
}

// runJob runs j; a panic (the hub recovers its handlers' own) is handed to
// failed rather than taking the process down.
func runJob(j job, failed func(any)) {
	defer close(j.done)
	defer func() {
		if v := recover(); v != nil {
			failed(v)
		}
	}()
	j.run()
}

// dispatch hands fn, one message of namespace k, to k's inbox and waits
// until it is handled — unless a server emit of this session awaits the
// client's ACK, in which case it returns at once so that the reader can
// read that ACK. Without such an emit, the reader handles one message at
// a time, as a native connection's does.
func (s *session) dispatch(k *socket, fn func()) {
	done := make(chan struct{})
	k.inbox.put(job{run: fn, done: done}, s.panicked)
	select {
	case <-done:
	case <-s.awaiting():
	}
}

// panicked ends the session after a panic in the hub's handling of a
// message, as the engine does for one in Message.
func (s *session) panicked(v any) {
	s.srv.log.Error("receiver_panic", slog.String("session", s.eng.ID()),
		slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
	s.mu.Lock()
	if s.failed == "" {
		s.failed = "internal_error"
	}
	s.mu.Unlock()
	s.eng.CloseNow(wire.StatusInternalError)
}
