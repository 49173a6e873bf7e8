package socketio

import (
	"errors"
	"sync"

	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/wire"
	wsproto "github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/socketio/internal/engine"
)

// socket is one namespace of a session: a connection of that namespace's
// hub, whose frames it queues on the session (it is the connection's
// bridge.Sink).
//
// The hub calls its Sink methods from any goroutine, some under the hub's
// locks, so they only queue on the Engine.IO session, close it, or start a
// goroutine that tells the hub the connection is over; they never call the
// hub directly.
type socket struct {
	sess *session
	nsp  *namespace

	inbox inbox // the messages for the hub, handled in order off the reader

	mu      sync.Mutex  // guards the fields below
	conn    bridge.Conn // the hub's side; nil until Connect returned it
	open    bool        // the welcome is out: broadcasts may be queued
	closing bool        // the hub asked for the close: nothing more is queued
	done    bool        // the hub is, or will be, told the connection is over
	reason  string      // why, for a Closed the socket could not make yet
	tr      *tracked    // the namespace's recovery; nil without (set before Connect)
}

var _ bridge.Sink = (*socket)(nil)

// Send implements bridge.Sink: the unit is queued on the session, whole or
// not at all.
func (k *socket) Send(class wire.Class, frames ...wire.Frame) wire.Result {
	return k.SendBatch(nil, class, frames...)
}

// SendBatch implements bridge.Sink: a fan-out's WebSocket writers start in
// one batch, as the hub's own connections' do.
func (k *socket) SendBatch(b *wire.Batch, class wire.Class, frames ...wire.Frame) wire.Result {
	if len(frames) == 0 {
		return wire.Queued // a message with no Socket.IO form (a reserved event name)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.queueLocked(b, class, frames)
}

// queueLocked queues a unit on the session; k.mu is held.
func (k *socket) queueLocked(b *wire.Batch, class wire.Class, frames []wire.Frame) wire.Result {
	switch {
	case k.closing || k.done:
		return wire.Closed
	case class == wire.Broadcast && !k.open:
		return wire.NotOpen
	}
	switch err := k.sess.eng.SendBatch(b, frames...); {
	case err == nil:
		if class == wire.Open {
			k.open = true
		}
		return wire.Queued
	case errors.Is(err, engine.ErrFull):
		return wire.Full
	default:
		return wire.Closed
	}
}

// Close implements bridge.Sink. A close a client must not undo by
// reconnecting (a user disconnected by the server, a token that expired,
// an idle namespace) is the namespace's DISCONNECT (final, the bye) on a
// session that stays; socket.io-client does not reconnect a namespace the
// server disconnected. Every other close (shutdown, slow consumer, abuse,
// an internal error) closes the whole Engine.IO session with code, which
// the client answers by reconnecting — to another node, for a shutdown —
// as it does after a transport close.
func (k *socket) Close(code wire.StatusCode, reason string, now bool, final ...wire.Frame) bool {
	k.mu.Lock()
	if k.closing || k.done {
		k.mu.Unlock()
		return false
	}
	k.closing = true
	if reconnects(code) {
		k.mu.Unlock()
		if now {
			k.sess.eng.CloseNow(code)
		} else {
			k.sess.eng.Close(code)
		}
		return true // the session's end tells the hub
	}
	if len(final) > 0 {
		_ = k.sess.eng.Send(final...) // a full queue loses the DISCONNECT, not the close
	}
	k.done = true
	conn := k.conn
	if conn == nil {
		k.reason = closedReason // Connect has not returned: attached finishes it
	}
	k.mu.Unlock()
	if k.tr != nil {
		go k.tr.ended(true) // closed for good: the session cannot be resumed
	}
	k.sess.forget(k)
	k.sess.failAcks(k)
	if conn != nil {
		k.sess.srv.release(func() { conn.Closed(closedReason) })
	}
	return true
}

// closedReason is what the transport reports when it finishes a close the
// hub asked for: the hub has recorded its own reason by then.
const closedReason = "closed_by_server"

// reconnects reports whether a close with code should leave the client
// reconnecting: every code but those after which the native protocol says
// not to reconnect on one's own (unauthorized, idle, token expired).
func reconnects(code wire.StatusCode) bool {
	switch wsproto.CloseCode(code) {
	case wsproto.CloseUnauthorized, wsproto.CloseIdle, wsproto.CloseTokenExpired:
		return false
	}
	return true
}

// Abort implements bridge.Sink: a connection the hub drops at once
// (Shutdown's deadline) takes its session with it. It does nothing once the
// transport has ended the connection, which is when the hub's own release
// calls it.
func (k *socket) Abort() {
	k.mu.Lock()
	done := k.done
	k.mu.Unlock()
	if !done {
		k.sess.eng.Abort()
	}
}

// attached records the hub's side once Connect returned it, and reports
// false when the hub closed the connection meanwhile, in which case it has
// been told the connection is over.
func (k *socket) attached(conn bridge.Conn) bool {
	k.mu.Lock()
	k.conn = conn
	done, reason := k.done, k.reason
	k.mu.Unlock()
	if done && reason != "" {
		conn.Closed(reason)
	}
	return !done
}

// hubConn returns the hub's side, set before the socket is joined.
func (k *socket) hubConn() bridge.Conn {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.conn
}

// end marks the connection over from the transport's side and returns the
// hub's side to tell, nil when it was already told (or is being told).
func (k *socket) end() bridge.Conn {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return nil
	}
	k.done = true
	return k.conn
}
