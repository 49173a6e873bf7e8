package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/protocol"
)

// Phase is where a client is in its life.
type Phase uint8

const (
	// Connecting: Dial is making the first connection.
	Connecting Phase = iota
	// Connected: the welcome arrived and the remembered rooms were rejoined.
	Connected
	// Reconnecting: the connection dropped; an attempt follows after
	// State.Delay.
	Reconnecting
	// Idle: the server closed an idle connection (4002); the client
	// reconnects when Emit, Call, Join, Leave or Refresh next needs it.
	Idle
	// Closed: the client stopped, by Close or for State.Err. Final.
	Closed
)

// String returns the phase's name.
func (p Phase) String() string {
	switch p {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Idle:
		return "idle"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// State is a state change, delivered to Options.OnState.
type State struct {
	// Phase is the phase entered.
	Phase Phase
	// ConnID is the server's connection id (Connected).
	ConnID string
	// Attempt counts reconnect attempts since the last connection, from 1
	// (Reconnecting).
	Attempt int
	// Delay is the wait before this attempt (Reconnecting).
	Delay time.Duration
	// Err is why: the drop or the failed attempt (Reconnecting, Idle), the
	// cause of stopping (Closed; nil after Close), the rooms that could not
	// be rejoined and were forgotten (Connected).
	Err error
	// Code is Err's close code when a close frame ended the connection or
	// attempt; 0 when something else did (network loss, HTTP refusal) or
	// there is no Err.
	Code protocol.CloseCode
}

// Event is an event the server sent: a broadcast to a room this connection
// is in, to its user, tenant or everyone, or an emit to it alone.
type Event struct {
	// Name is the event name.
	Name string
	// Room is the room it was delivered through, "" otherwise.
	Room string
	// Data is the payload as sent; nil when there is none.
	Data json.RawMessage
	// Position is the event's place in its room's stream, for a room whose
	// history the server keeps; zero otherwise.
	Position Position
}

// Decode unmarshals the event's data into v; an event without data is an
// error.
func (e Event) Decode(v any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("client: event %q has no data", e.Name)
	}
	return json.Unmarshal(e.Data, v)
}

// Client is a connection to a wsgate hub that re-establishes itself. It is
// safe for concurrent use. Build one with Dial; the zero Client is not
// usable.
type Client struct {
	opts  Options
	log   *slog.Logger
	ids   atomic.Uint64
	cb    dispatcher
	randN func(int64) int64 // the backoff's random source: rand.Int64N

	ctx       context.Context // cancelled by Close: ends Token calls, dials, waits
	cancel    context.CancelFunc
	superDone chan struct{} // closed when the supervisor goroutine returns
	done      chan struct{} // closed after the final callback
	closeOnce sync.Once
	endOnce   sync.Once

	mu      sync.Mutex          // guards the fields below
	cur     *conn               // the connection in use; nil while (re)connecting
	ready   chan struct{}       // closed when cur is set or the client stops; renewed when cur is cleared
	err     error               // why the client stopped (wraps ErrClosed); nil while it runs
	idle    bool                // the supervisor waits on wake (Idle)
	waiters int                 // calls waiting for a connection
	wake    chan struct{}       // capacity 1: a waiter asks an idle supervisor to reconnect
	rooms   map[string]struct{} // rooms the application joined: rejoined on every new connection
	pos     map[string]Position // the position of every room with history: recovered from after a reconnect
}

// Dial connects to the hub and returns once the welcome arrived. It makes
// one attempt: a refusal (*HandshakeError with the HTTP status and code), a
// close before the welcome, or a network error is returned as is. From then
// on the client reconnects by itself after a drop, following the policy in
// the package documentation, until Close.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	c := &Client{
		opts:      opts,
		log:       opts.Logger,
		randN:     rand.Int64N,
		superDone: make(chan struct{}),
		done:      make(chan struct{}),
		ready:     make(chan struct{}),
		wake:      make(chan struct{}, 1),
		rooms:     make(map[string]struct{}),
		pos:       make(map[string]Position),
		cb:        dispatcher{max: opts.EventQueue},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.state(State{Phase: Connecting})
	cn, _, err := c.connect(ctx, "", nil)
	if err != nil {
		c.cancel()
		close(c.superDone)
		c.end(fmt.Errorf("%w: %w", ErrClosed, err), err)
		return nil, err
	}
	c.publish(cn, nil)
	go c.supervise(cn)
	return c, nil
}

// ConnID returns the server's id of the current connection, "" while the
// client is not connected. It changes with every reconnect.
func (c *Client) ConnID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.welcome.ConnectionID
}

// Err returns why the client stopped, nil while it runs. It wraps ErrClosed
// and, when the client stopped by itself, the cause (errors.As it into a
// *HandshakeError, for instance).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done returns a channel closed once the client has stopped (Close, or a
// terminal refusal) and the final OnState callback has returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection normally (1000) and stops reconnecting.
// Calls in flight fail with ErrClosed. It returns once the client's
// goroutines have ended, except the callback goroutine: OnEvent callbacks
// still queued are skipped, a callback in progress finishes, then OnState
// gets Closed (wait on Done for that). Close may be called from a callback
// and more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = ErrClosed
		}
		if c.cur == nil {
			c.closeReady()
		}
		c.mu.Unlock()
		c.cb.dropEvents()
		c.cancel()
		<-c.superDone
		c.end(ErrClosed, nil)
	})
	return nil
}

// end stops the client for good: err is what calls return from now on,
// cause what the Closed state reports.
func (c *Client) end(err, cause error) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		if c.cur == nil {
			c.closeReady()
		}
		c.mu.Unlock()
		if cause != nil {
			c.log.Warn("stopped", slog.String("reason", cause.Error()))
		}
		c.state(State{Phase: Closed, Err: cause})
		c.cb.notify(func() { close(c.done) })
	})
}

// closeReady wakes the waiters; c.mu is held and cur is nil.
func (c *Client) closeReady() {
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

// state reports st to OnState, in order with the events.
func (c *Client) state(st State) {
	st.Code = closeCode(st.Err)
	if fn := c.opts.OnState; fn != nil {
		c.cb.notify(func() { fn(st) })
	}
}

// closeCode is the code of the close frame that ended err, 0 if none did.
func closeCode(err error) protocol.CloseCode {
	if s := websocket.CloseStatus(err); s > 0 {
		return protocol.CloseCode(s)
	}
	return 0
}

// publish makes cn the connection calls use. lost are rooms that could not
// be rejoined.
func (c *Client) publish(cn *conn, lost error) {
	c.mu.Lock()
	c.cur = cn
	c.closeReady()
	c.mu.Unlock()
	c.log.Info("connected", slog.String("conn_id", cn.welcome.ConnectionID), slog.String("user", cn.welcome.UserID))
	c.state(State{Phase: Connected, ConnID: cn.welcome.ConnectionID, Err: lost})
}

// unpublish withdraws cn; calls wait for the next connection.
func (c *Client) unpublish(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == cn {
		c.cur = nil
		if c.err == nil {
			c.ready = make(chan struct{})
		}
	}
}

// waitConn returns the connection in use, waiting while the client
// reconnects, until ctx ends or the client stops.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	c.waiters++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.waiters--
		c.mu.Unlock()
	}()
	for {
		c.mu.Lock()
		cn, ready, err := c.cur, c.ready, c.err
		if cn == nil && err == nil && c.idle {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		c.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case cn != nil:
			return cn, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, context.Cause(ctx))
		}
	}
}

// nextID returns a message id: increasing, from 1, below 2^53 so that any
// peer can represent it exactly.
func (c *Client) nextID() uint64 {
	return (c.ids.Add(1)-1)%protocol.MaxID + 1
}

func (c *Client) remember(room string) {
	c.mu.Lock()
	c.rooms[room] = struct{}{}
	c.mu.Unlock()
}

func (c *Client) forgetRoom(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	delete(c.pos, room)
	c.mu.Unlock()
}

func (c *Client) wantsRoom(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.rooms[room]
	return ok
}
