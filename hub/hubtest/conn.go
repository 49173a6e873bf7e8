package hubtest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
)

// Options configures a connection opened with Open. The zero value opens a
// connection with an empty request whose Next waits up to 5 seconds.
type Options struct {
	// Context is what the connection's handlers derive their context from,
	// as hub.Options.ConnContext would return it for a real upgrade request:
	// put in it what the service's HTTP middleware would (a request id, a
	// logger). Its cancellation is not kept: the connection ends with Close
	// or when the hub closes it. Default context.Background().
	Context context.Context
	// Request is what handlers see of the upgrade request through
	// hub.Context.Conn().Request, and what the security log says. Default:
	// every field empty.
	Request hub.RequestInfo
	// Wait bounds how long Next waits for an event when its context has no
	// deadline. Default 5 s.
	Wait time.Duration
}

// defaultWait is Next's bound when neither its context nor Options.Wait
// gives one: long enough for any event of a hub in the same process, short
// enough that a missing one fails the test instead of hanging it.
const defaultWait = 5 * time.Second

// Conn is a connection of a hub without a socket: what it sends goes
// through the hub's dispatch as a client's decoded frame would, and what the
// hub sends it is recorded. Its methods are safe for concurrent use; the
// messages go to the hub one at a time, in the order the calls are made.
type Conn struct {
	bc   bridge.Conn
	wait time.Duration
	keep func(Event) bool // which events are recorded; nil records all

	// callMu lets one message at a time into the hub, as a transport must,
	// and orders the end of the connection after the message in progress.
	callMu sync.Mutex
	lastID uint64 // the last message id used; guarded by callMu

	mu      sync.Mutex // guards the fields below
	open    bool       // the welcome is out: broadcasts may be delivered
	events  []Event
	read    int           // the events Next returned
	replies []reply       // acks and errors received while handling the current message
	closure *CloseError   // how the hub closed the connection, nil until it did
	ending  bool          // end started: the connection takes nothing more
	over    bool          // done is closed
	wake    chan struct{} // closed by the next event or the end; nil when nobody waits
	broken  error         // a frame from the hub that could not be parsed

	endOnce sync.Once
	done    chan struct{}  // closed once the hub released the connection
	bg      sync.WaitGroup // goroutines finishing a close the hub started
}

// reply is an ack or an error frame.
type reply struct {
	id    uint64
	hasID bool
	data  json.RawMessage
	err   *Error // nil for an ack
}

// Connect opens a connection of h authenticated as id, as if a client had
// presented a credential for it, and closes it when the test ends. It fails
// t if the hub refuses the connection (its Admit, or Shutdown); test a
// refusal with Open.
func Connect(t testing.TB, h *hub.Hub, id auth.Identity) *Conn {
	t.Helper()
	c, err := Open(h, id, Options{})
	if err != nil {
		t.Fatalf("hubtest.Connect as %q: %v", id.UserID, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Open opens a connection of h authenticated as id, with the hub's
// admission (Options.Admit) and its automatic rooms, and returns once the
// hub has welcomed it. A refusal is returned as the error (errors.As it
// into a *protocol.Refusal when the hub's Admit gave one); a connection the
// hub could not set up (AutoRooms failed) is an error too. The caller
// closes the connection.
func Open(h *hub.Hub, id auth.Identity, opts Options) (*Conn, error) {
	return open(h, id, opts, nil)
}

func open(h *hub.Hub, id auth.Identity, opts Options, keep func(Event) bool) (*Conn, error) {
	switch {
	case h == nil:
		return nil, errors.New("hubtest: nil hub")
	case id.UserID == "":
		return nil, errors.New("hubtest: the identity has no UserID")
	case opts.Wait < 0:
		return nil, errors.New("hubtest: Options.Wait must not be negative")
	}
	c := &Conn{wait: cmp.Or(opts.Wait, defaultWait), keep: keep, done: make(chan struct{})}
	if err := c.attach(h, id, opts); err != nil {
		c.bg.Wait()
		return nil, err
	}
	return c, nil
}

// attach starts the connection through the hub's bridge, the entry point
// of transports other than its own WebSocket: everything but the socket is
// the hub's own code.
func (c *Conn) attach(h *hub.Hub, id auth.Identity, opts Options) error {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	base := opts.Context
	if base == nil {
		base = context.Background()
	}
	r := opts.Request
	req := bridge.Request{
		Ctx:      context.WithoutCancel(base),
		ClientIP: r.ClientIP, UserAgent: r.UserAgent, Origin: r.Origin,
		Host: r.Host, Path: r.Path, RequestID: r.RequestID,
	}
	bc, err := bridge.Attach(h, req, id, protocol.Native{}, sink{c})
	if err != nil {
		// The hub released whatever it had taken; a close it asked for
		// meanwhile has nothing left to finish.
		c.end("")
		return fmt.Errorf("hubtest: connect: %w", err)
	}
	c.bc = bc
	return nil
}

// ID returns the connection's id, as the welcome gives it to a client: the
// value of hub.Context.ConnID in its handlers, for hub.Except or
// Hub.JoinConn.
func (c *Conn) ID() string { return c.bc.ID() }

// Call sends event with in as its data and an id, and returns the hub's
// answer: the ack's data decoded into out (a pointer; nil ignores the
// data, and an ack without data leaves out as it is), or the error frame as
// an *Error. in is encoded with encoding/json; a json.RawMessage is sent as
// is, for input a Go value cannot express (an unknown field, a wrong type).
//
// Call returns once the hub has answered: handlers run with the hub's
// deadline (Options.HandlerTimeout), after which the answer is TIMEOUT.
// With the hub's in-memory broker, what the handler broadcast has reached
// every connection of the hub by then.
func (c *Conn) Call(event string, in, out any) error {
	data, err := encodeData(in)
	if err != nil {
		return err
	}
	rep, err := c.request(envelope{Type: "event", Event: event, Data: data}, true)
	if err != nil || out == nil || len(rep.data) == 0 {
		return err
	}
	if err := json.Unmarshal(rep.data, out); err != nil {
		return fmt.Errorf("hubtest: decode the answer to %q: %w", event, err)
	}
	return nil
}

// Emit sends event with in as its data and no id: the hub acks nothing. It
// returns the error frame the hub sent instead, as an *Error, when it
// refused the message or the handler failed; nil when the handler
// succeeded.
func (c *Conn) Emit(event string, in any) error {
	data, err := encodeData(in)
	if err != nil {
		return err
	}
	_, err = c.request(envelope{Type: "event", Event: event, Data: data}, false)
	return err
}

// Join asks to join room as a client does: through the room policy, the
// room limit and the rate limit. A refusal is an *Error (FORBIDDEN,
// ROOM_LIMIT_EXCEEDED, INVALID_MESSAGE...) and changes nothing. To put the
// connection in a room server-side, use Hub.JoinConn with ID.
func (c *Conn) Join(room string) error {
	_, err := c.request(envelope{Type: "join", Room: room}, true)
	return err
}

// Leave asks to leave room as a client does; automatic rooms cannot be
// left (FORBIDDEN).
func (c *Conn) Leave(room string) error {
	_, err := c.request(envelope{Type: "leave", Room: room}, true)
	return err
}

// Next returns the next event the connection received that Next has not
// returned yet, waiting for one until ctx is done (or Options.Wait, when
// ctx has no deadline). Once the connection is over and every event was
// returned, it returns Err's error.
func (c *Conn) Next(ctx context.Context) (Event, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.wait)
		defer cancel()
	}
	for {
		c.mu.Lock()
		switch {
		case c.broken != nil:
			err := c.broken
			c.mu.Unlock()
			return Event{}, err
		case c.read < len(c.events):
			ev := c.events[c.read]
			c.read++
			c.mu.Unlock()
			return ev, nil
		case c.over:
			err := c.errLocked()
			c.mu.Unlock()
			return Event{}, err
		}
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("hubtest: no event: %w", ctx.Err())
		}
	}
}

// Events returns every event the connection received so far, in order,
// whether or not Next returned it.
func (c *Conn) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// Done returns a channel closed once the connection is over and the hub
// has released it: its rooms left, its admission slot given back, its
// OnDisconnect hook run.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open; once it is over, ErrClosed
// after Close, or a *CloseError saying how the hub closed it.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.over {
		return nil
	}
	return c.errLocked()
}

func (c *Conn) errLocked() error {
	if c.closure != nil {
		return c.closure
	}
	return ErrClosed
}

// Close ends the connection as a client closing it would ("client_closed"
// in the log, metrics and OnDisconnect), and returns once the hub has
// released it. It may be called more than once.
func (c *Conn) Close() {
	c.callMu.Lock()
	c.end("client_closed")
	c.callMu.Unlock()
	c.bg.Wait()
}

// end tells the hub the connection is over, once; callMu is held, so no
// message is in the hub meanwhile.
func (c *Conn) end(reason string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.ending = true
		c.mu.Unlock()
		if c.bc != nil {
			c.bc.Closed(reason)
		}
		c.mu.Lock()
		c.over = true
		c.wakeLocked()
		c.mu.Unlock()
		close(c.done)
	})
}

// closedByHub records how the hub closed the connection and finishes the
// close on a goroutine of its own: the hub may call from under its locks
// (a broadcast's fan-out), which releasing the connection takes. It reports
// whether this was the first close.
func (c *Conn) closedByHub(ce *CloseError) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closure != nil || c.ending {
		return false
	}
	c.closure = ce
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.callMu.Lock()
		defer c.callMu.Unlock()
		// The hub recorded its reason before it asked for the close; this
		// one only stands in if it did not.
		c.end("closed_by_server")
	}()
	return true
}

func (c *Conn) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// envelope is a client message as the wire carries it. request frames it
// and decodes it with the hub's own codec, so the hub gets exactly what a
// client's frame would give it.
type envelope struct {
	Type  string          `json:"type"`
	ID    *uint64         `json:"id,omitempty"`
	Event string          `json:"event,omitempty"`
	Room  string          `json:"room,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// request hands one message to the hub and returns its answer: the ack or
// error carrying the message's id, or for a message without one the error
// the hub sent while handling it.
func (c *Conn) request(env envelope, withID bool) (reply, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if withID {
		c.lastID++
		id := c.lastID
		env.ID = &id
	}
	frame, err := json.Marshal(env)
	if err != nil {
		return reply{}, fmt.Errorf("hubtest: encode the %s message: %w", env.Type, err)
	}
	in, err := protocol.Native{}.DecodeText(frame)
	if err != nil {
		// What a client could not send either: an event name outside
		// [A-Za-z0-9:._-]{1,64}, an empty or oversized room name.
		return reply{}, fmt.Errorf("hubtest: not a valid %s message: %w", env.Type, err)
	}
	c.mu.Lock()
	ended := c.ending || c.closure != nil
	c.replies = c.replies[:0]
	c.mu.Unlock()
	if ended {
		return reply{}, c.endErr()
	}
	if err := c.handle(in); err != nil {
		return reply{}, err
	}
	return c.answer(in)
}

// endErr is the error of a message sent once the connection is over or
// closing.
func (c *Conn) endErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errLocked()
}

// handle gives the message to the hub, which handles it on this goroutine
// (the handler on its own, awaited). A panic that escapes the hub is a hub
// bug: it fails the message rather than the test binary.
func (c *Conn) handle(in protocol.Inbound) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("hubtest: the hub panicked handling a %s message: %v\n%s", in.Kind, p, debug.Stack())
		}
	}()
	c.bc.Handle(in)
	return nil
}

// answer finds the hub's answer to in among the replies received while it
// was handled: the hub answers before Handle returns, or closes the
// connection.
func (c *Conn) answer(in protocol.Inbound) (reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.replies {
		if r.hasID != in.HasID || r.id != in.ID {
			continue
		}
		if r.err != nil {
			return r, r.err
		}
		return r, nil
	}
	switch {
	case c.closure != nil:
		return reply{}, c.closure
	case !in.HasID:
		return reply{}, nil
	}
	return reply{}, fmt.Errorf("hubtest: the hub did not answer message %d", in.ID)
}

// encodeData encodes a message's data; nil (or what encodes to null) is no
// data.
func encodeData(in any) (json.RawMessage, error) {
	if in == nil {
		return nil, nil
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("hubtest: encode the data: %w", err)
	}
	if string(raw) == "null" {
		return nil, nil
	}
	return raw, nil
}
