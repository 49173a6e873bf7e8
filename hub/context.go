package hub

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/room"
)

// Context is what a handler receives: the request context (cancelled at the
// handler deadline or when the connection ends) plus the connection it runs
// for.
type Context struct {
	context.Context
	c     *conn
	msgID uint64
	seq   uint64
}

// ConnID returns the connection's id.
func (x Context) ConnID() string { return x.c.id }

// Identity returns who the connection acts for.
func (x Context) Identity() auth.Identity { return x.c.identity() }

// Logger returns the hub's logger with the connection and message ids, user
// and tenant attached.
func (x Context) Logger() *slog.Logger {
	return x.c.h.log.With(x.c.meta.attrs(slog.Uint64("msg_seq", x.seq))...)
}

// Hub returns the hub serving the connection.
func (x Context) Hub() *Hub { return x.c.h }

// Join adds the connection to room without consulting the room policy: the
// server decides. The per-connection room limit still applies.
func (x Context) Join(name string) error {
	if !room.Valid(name) {
		return fmt.Errorf("hub: %w", room.ErrInvalidName)
	}
	return x.c.h.join(x.c, name)
}

// Leave removes the connection from room.
func (x Context) Leave(name string) { x.c.h.leave(x.c, name) }

// Emit sends an event to this connection only.
func (x Context) Emit(event string, data any) error {
	m, err := eventMessage(event, "", data)
	if err != nil {
		return err
	}
	x.c.send(&m)
	return nil
}

// Broadcast sends an event to every member of room on every node, except
// this connection: the usual "to everyone else in the conversation".
func (x Context) Broadcast(room, event string, data any) error {
	return x.c.h.Broadcast(x, room, event, data, Except(x.c.id))
}
