package hubtest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
)

// Listener records what is broadcast to one room: the events a member of
// the room receives through it.
type Listener struct {
	c    *Conn
	room string
}

// listeners numbers the listeners' users, so that per-user connection
// limits never refuse one.
var listeners atomic.Uint64

// Listen joins a listener to room server-side (Hub.JoinConn: no room policy
// applies) and closes it when the test ends. It fails t if the hub refuses
// it.
//
// The listener is a connection of the hub, like any other: it goes through
// the hub's admission, joins the automatic rooms of its user
// ("hubtest-listener-N", no tenant, no roles), counts in Hub.Connections and
// Hub.Presence, and runs the OnConnect and OnDisconnect hooks. It records
// only the events delivered through room; to see what is sent to a user or
// a tenant, Connect as one.
func Listen(t testing.TB, h *hub.Hub, room string) *Listener {
	t.Helper()
	id := auth.Identity{UserID: "hubtest-listener-" + strconv.FormatUint(listeners.Add(1), 10)}
	c, err := open(h, id, Options{}, func(ev Event) bool { return ev.Room == room })
	if err != nil {
		t.Fatalf("hubtest.Listen(%q): %v", room, err)
	}
	if err := h.JoinConn(c.ID(), room); err != nil {
		c.Close()
		t.Fatalf("hubtest.Listen(%q): %v", room, err)
	}
	t.Cleanup(c.Close)
	return &Listener{c: c, room: room}
}

// Room returns the room the listener records.
func (l *Listener) Room() string { return l.room }

// Next returns the next event broadcast to the room that Next has not
// returned yet, waiting until ctx is done (at most 5 seconds when ctx has
// no deadline).
func (l *Listener) Next(ctx context.Context) (Event, error) { return l.c.Next(ctx) }

// Events returns every event broadcast to the room since the listener
// joined, in order.
func (l *Listener) Events() []Event { return l.c.Events() }

// Close takes the listener out of the hub; the test's end does it too.
func (l *Listener) Close() { l.c.Close() }
