package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
)

// Position is a place in a room's stream, for the rooms whose history the
// server keeps: events are numbered 1, 2, 3… within an epoch, and the epoch
// changes when the server could not keep the numbering going (its store
// restarted, the history expired).
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// IsZero reports whether p is the zero Position: none known.
func (p Position) IsZero() bool { return p.Offset == 0 && p.Epoch == "" }

// Recovery says what came of catching up with a room with history: after
// a reconnect, for the rooms the client was in (its automatic rooms too),
// or when the server found a gap it could not fill.
type Recovery struct {
	// Room is the room.
	Room string
	// Recovered is true when every event the client missed was delivered
	// (Missed of them, before this report): nothing to do. False means
	// some are lost (too many, too old, the server's store restarted, or it
	// could not answer): the application reloads the room's state from its
	// own source, then applies the events that follow.
	Recovered bool
	// Missed is how many missed events were delivered.
	Missed int
	// Position is the room's position after the recovery; zero when the
	// server could not tell it.
	Position Position
	// Err is set when the server refused to rejoin the room (FORBIDDEN
	// after a token change, say): the client is no longer in it.
	Err error
}

// recoverEvent is the event with which the server asks for a recovery.
const recoverEvent = "$recover"

// roomRecovery is a recovery of one room in progress on a connection:
// the room's events are held back from the moment it starts to the join's
// answer, then the missed ones pass, then those held back, without the
// ones the recovery already delivered.
type roomRecovery struct {
	since  Position
	acked  bool
	left   int       // missed events still to come after the ack
	missed int       // missed events announced
	held   []inFrame // events that came before the ack
	again  bool      // the server asked for another recovery meanwhile
}

// joinAck is the data of the ack of a join of a room with history.
type joinAck struct {
	Offset    *uint64 `json:"offset"`
	Epoch     string  `json:"epoch"`
	Recovered *bool   `json:"recovered"`
	Missed    int     `json:"missed"`
}

// Position returns the position of the last event received from room, or
// the room's top the server gave, and whether one is known: the rooms whose
// history the server keeps have one.
func (c *Client) Position(room string) (Position, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pos[room]
	return p, ok
}

// advance records an event's position and reports whether the event is
// new: an event at or below the room's position in the same epoch was
// delivered already.
func (c *Client) advance(room string, p Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.pos[room]; ok && old.Epoch == p.Epoch && p.Offset <= old.Offset {
		return false
	}
	c.pos[room] = p
	return true
}

// joined records the top a plain join's ack gives for a room with
// history, unless the room's events arrived first.
func (c *Client) joined(room string, ack json.RawMessage) {
	var a joinAck
	if json.Unmarshal(ack, &a) != nil || a.Offset == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pos[room]; !ok {
		c.pos[room] = Position{Offset: *a.Offset, Epoch: a.Epoch}
	}
}

func (c *Client) setPosition(room string, p Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.IsZero() {
		delete(c.pos, room)
		return
	}
	c.pos[room] = p
}

// reportRecovery tells the application, in order with the events.
func (c *Client) reportRecovery(r Recovery) {
	c.log.Info("recovery", slog.String("room", r.Room), slog.Bool("recovered", r.Recovered), slog.Int("missed", r.Missed))
	if fn := c.opts.OnRecovery; fn != nil {
		c.cb.notify(func() { fn(r) })
	}
}

// startRecovery holds back room's events from now on; false when a
// recovery of the room is already in progress.
func (cn *conn) startRecovery(room string, since Position) bool {
	cn.recMu.Lock()
	defer cn.recMu.Unlock()
	if cn.recovering[room] != nil {
		return false
	}
	if cn.recovering == nil {
		cn.recovering = make(map[string]*roomRecovery)
	}
	cn.recovering[room] = &roomRecovery{since: since}
	return true
}

// onEvent handles an event of a room with history: delivered once, in
// order, or held back while the room is recovered. False means the event
// queue is full.
func (cn *conn) onEvent(f inFrame) bool {
	c := cn.c
	cn.recMu.Lock()
	defer cn.recMu.Unlock()
	rr := cn.recovering[f.Room]
	switch {
	case rr == nil:
		return cn.deliver(f)
	case !rr.acked:
		if len(rr.held) >= c.opts.EventQueue {
			return false
		}
		rr.held = append(rr.held, f)
		return true
	}
	ok := cn.deliver(f)
	if rr.left--; rr.left <= 0 {
		ok = cn.finishLocked(f.Room, rr, true) && ok
	}
	return ok
}

// deliver passes an event to the application unless it was delivered
// already; cn.recMu is held, so that events go out in order.
func (cn *conn) deliver(f inFrame) bool {
	c := cn.c
	p := Position{Offset: *f.Offset, Epoch: f.Epoch}
	if !c.advance(f.Room, p) {
		return true
	}
	if c.opts.OnEvent == nil {
		return true
	}
	ev := Event{Name: f.Event, Room: f.Room, Data: f.Data, Position: p}
	return c.cb.event(func() { c.opts.OnEvent(ev) })
}

// recoveryAcked runs on the reader when the join of a recovery is acked,
// before the events that follow the ack are read.
func (cn *conn) recoveryAcked(room string, data json.RawMessage) {
	var a joinAck
	_ = json.Unmarshal(data, &a)
	cn.recMu.Lock()
	defer cn.recMu.Unlock()
	rr := cn.recovering[room]
	if rr == nil || rr.acked {
		return
	}
	rr.acked = true
	var top Position
	if a.Offset != nil {
		top = Position{Offset: *a.Offset, Epoch: a.Epoch}
	}
	switch {
	case a.Recovered == nil:
		// The room keeps no history (any more): nothing to recover.
		cn.c.setPosition(room, top)
		cn.flushLocked(room, rr)
	case *a.Recovered:
		rr.left, rr.missed = a.Missed, a.Missed
		if rr.left == 0 {
			cn.finishLocked(room, rr, true)
		}
	default:
		cn.c.setPosition(room, top)
		cn.c.reportRecovery(Recovery{Room: room, Position: top})
		cn.flushLocked(room, rr)
	}
}

// finishLocked ends a recovery whose missed events were all delivered.
func (cn *conn) finishLocked(room string, rr *roomRecovery, recovered bool) bool {
	p, _ := cn.c.Position(room)
	cn.c.reportRecovery(Recovery{Room: room, Recovered: recovered, Missed: rr.missed, Position: p})
	return cn.flushLocked(room, rr)
}

// flushLocked delivers the held-back events, but those already delivered,
// and ends the recovery, or starts the next one the server asked for.
func (cn *conn) flushLocked(room string, rr *roomRecovery) bool {
	delete(cn.recovering, room)
	ok := true
	for _, f := range rr.held {
		ok = cn.deliver(f) && ok
	}
	if rr.again {
		if since, known := cn.c.Position(room); known {
			cn.recovering[room] = &roomRecovery{since: since}
			go cn.recoverInBackground(room, since)
		}
	}
	return ok
}

// abandonRecovery ends a recovery whose join failed: the room's held
// events are delivered, and the application hears why.
func (cn *conn) abandonRecovery(room string, err error) {
	cn.recMu.Lock()
	defer cn.recMu.Unlock()
	rr := cn.recovering[room]
	if rr == nil {
		return
	}
	p, _ := cn.c.Position(room)
	cn.c.reportRecovery(Recovery{Room: room, Position: p, Err: err})
	cn.flushLocked(room, rr)
}

// sendRecovery sends the join of a recovery started with startRecovery:
// room's events are held back until the missed ones are delivered. After
// an error the events are still held: the caller retries, or gives up.
func (cn *conn) sendRecovery(ctx context.Context, room string, since Position, onAck func()) error {
	data, _ := json.Marshal(struct {
		Since Position `json:"since"`
	}{since})
	_, err := cn.call(ctx, outFrame{Type: "join", Room: room, Data: data}, func(ack json.RawMessage) {
		cn.recoveryAcked(room, ack)
		if onAck != nil {
			onAck()
		}
	})
	return err
}

// giveUp ends a recovery whose join failed. A failure that is the server's
// answer (or none in time) is reported to the application; a lost
// connection is not (the next one recovers the room again).
func (cn *conn) giveUp(room string, err error) {
	var se *ServerError
	if errors.As(err, &se) || errors.Is(err, ErrTimeout) {
		cn.abandonRecovery(room, fmt.Errorf("client: recover %q: %w", room, err))
	}
}

// recoverAsked answers the server's $recover for a room (a gap it could
// not fill), on the reader: the room's events are held back from here, and
// the join with since goes out from a goroutine of its own, since the
// reader must go on reading the answer. During a recovery of the room, a
// new one follows it.
func (cn *conn) recoverAsked(f inFrame) {
	c := cn.c
	since, ok := c.Position(f.Room)
	if !ok {
		_ = json.Unmarshal(f.Data, &since)
	}
	if since.Epoch == "" {
		return
	}
	if !cn.startRecovery(f.Room, since) {
		cn.recMu.Lock()
		if rr := cn.recovering[f.Room]; rr != nil {
			rr.again = true
		}
		cn.recMu.Unlock()
		return
	}
	go cn.recoverInBackground(f.Room, since)
}

func (cn *conn) recoverInBackground(room string, since Position) {
	ctx, cancel := context.WithTimeoutCause(cn.ctx, cn.c.opts.AckTimeout, ErrTimeout)
	defer cancel()
	if err := cn.sendRecovery(ctx, room, since, nil); err != nil {
		cn.giveUp(room, err)
	}
}

// prepareRecoveries runs once the welcome arrived, before any later frame
// is read: an automatic room the client has a position for, and missed
// something of, is held back and recovered once connected (see rejoin); one
// it never had a position for starts at the top the welcome gave.
func (cn *conn) prepareRecoveries() {
	c := cn.c
	for room, top := range cn.welcome.Positions {
		since, known := c.Position(room)
		switch {
		case !known:
			c.setPosition(room, top)
		case since == top:
			c.reportRecovery(Recovery{Room: room, Recovered: true, Position: top})
		case since.Epoch != top.Epoch:
			// The server would answer the same: another epoch cannot be
			// recovered.
			c.setPosition(room, top)
			c.reportRecovery(Recovery{Room: room, Position: top})
		default:
			if cn.startRecovery(room, since) {
				cn.autoRecover = append(cn.autoRecover, room)
			}
		}
	}
}
