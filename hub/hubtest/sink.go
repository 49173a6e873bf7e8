package hubtest

import (
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/protocol"
)

// Event is an event a connection received: a broadcast to a room it is
// in, to its user, tenant or everyone, or an emit to it alone.
type Event struct {
	// Name is the event name.
	Name string
	// Room is the room it was delivered through, "" otherwise (Emit,
	// ToUser, ToTenant, ToAll).
	Room string
	// Data is the payload as a client receives it; nil when there is none.
	Data json.RawMessage
	// Offset and Epoch are the event's place in its room's stream, for a
	// room that keeps history; zero otherwise.
	Offset uint64
	Epoch  string
}

// Decode unmarshals the event's data into v; an event without data is an
// error.
func (e Event) Decode(v any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("hubtest: event %q has no data", e.Name)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("hubtest: decode event %q: %w", e.Name, err)
	}
	return nil
}

// String describes the event for test failures: its name, room, position
// and data.
func (e Event) String() string {
	s := e.Name
	if e.Room != "" {
		s += " in " + e.Room
	}
	if e.Epoch != "" || e.Offset != 0 {
		s += fmt.Sprintf(" at %d/%s", e.Offset, e.Epoch)
	}
	if len(e.Data) > 0 {
		s += " " + string(e.Data)
	}
	return s
}

// sink is the transport side of a Conn (bridge.Sink): it takes the frames
// the hub queues, as a client that reads instantly would, and records them.
// Its methods may be called under the hub's locks: they only record.
type sink struct{ c *Conn }

// frame is a server → client envelope of the wsgate.v1 protocol.
type frame struct {
	Type    string          `json:"type"`
	ID      *uint64         `json:"id"`
	Event   string          `json:"event"`
	Room    string          `json:"room"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

// Send implements bridge.Sink: a unit is taken whole, or refused once the
// connection is closing, or, for a broadcast, before the welcome.
func (s sink) Send(class wire.Class, frames ...wire.Frame) wire.Result {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closure != nil || c.ending:
		return wire.Closed
	case class == wire.Broadcast && !c.open:
		return wire.NotOpen
	}
	if class == wire.Open {
		c.open = true
	}
	for _, f := range frames {
		c.recordLocked(f.Payload)
	}
	return wire.Queued
}

// SendBatch implements bridge.Sink: there is no writer to start.
func (s sink) SendBatch(_ *wire.Batch, class wire.Class, frames ...wire.Frame) wire.Result {
	return s.Send(class, frames...)
}

// Close implements bridge.Sink: the hub closes the connection, after the
// final frames (a bye). Everything queued before is already recorded.
func (s sink) Close(code wire.StatusCode, reason string, _ bool, final ...wire.Frame) bool {
	ce := &CloseError{Code: protocol.CloseCode(code), Reason: reason}
	for _, f := range final {
		var fr frame
		if json.Unmarshal(f.Payload, &fr) == nil && fr.Type == "bye" {
			var bye struct {
				Reason string `json:"reason"`
			}
			_ = json.Unmarshal(fr.Data, &bye)
			ce.Bye = bye.Reason
		}
	}
	return s.c.closedByHub(ce)
}

// Abort implements bridge.Sink: the hub drops the connection without a
// close (Shutdown's deadline), or, after the connection ended, releases
// it, which changes nothing.
func (s sink) Abort() { s.c.closedByHub(&CloseError{Code: protocol.CloseAbnormal}) }

// recordLocked parses one frame the hub sent; c.mu is held.
func (c *Conn) recordLocked(p []byte) {
	var f frame
	if err := json.Unmarshal(p, &f); err != nil {
		c.broken = fmt.Errorf("hubtest: the hub sent a frame that is not JSON: %q", p)
		c.wakeLocked()
		return
	}
	switch f.Type {
	case "event":
		ev := Event{Name: f.Event, Room: f.Room, Data: f.Data, Offset: f.Offset, Epoch: f.Epoch}
		if c.keep == nil || c.keep(ev) {
			c.events = append(c.events, ev)
			c.wakeLocked()
		}
	case "ack":
		if f.ID != nil {
			c.replies = append(c.replies, reply{id: *f.ID, hasID: true, data: f.Data})
		}
	case "error":
		r := reply{err: &Error{Code: f.Code, Message: f.Message}}
		if f.ID != nil {
			r.id, r.hasID = *f.ID, true
		}
		c.replies = append(c.replies, r)
	}
	// The welcome carries the connection id, which the hub's side of the
	// bridge gives too.
}
