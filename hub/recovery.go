package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// How a connection's view of a room's stream stays whole.
//
// A connection keeps, for every room with history it receives, a cursor:
// the position of the last message of the room it was sent, or the top it
// was told (welcome, join ack). A live message is sent when it is the next
// one. An older one was sent already (a replay overtook it) and is dropped.
// A newer one means a gap (a message lost between Redis and this node, or
// dropped by a full queue): the gap is repaired from history, and when it
// cannot be, the client is sent the $recover event, which tells it to
// recover the room itself (a join with since).
//
// While a room is being recovered for a connection (a join, the welcome, a
// repair), the room's live messages for that connection are held back in
// the cursor, at most SendQueueMessages of them, and released after the
// replayed ones, dropping those the replay covered: no duplicate, no gap.
//
// Lock order: the room index's or the connection table's read lock (a
// fan-out), then conn.histMu, then the writer's lock.

// cursor is what a connection was sent of one room's stream.
type cursor struct {
	room string
	pos  protocol.Position // the last message sent, or the top the client was told
	hold *holdback         // set while the room's live messages are held back
}

// holdback holds one room's live messages for one connection while a
// recovery of the room runs.
type holdback struct {
	msgs     []held
	overflow bool          // messages past the bound were dropped
	done     chan struct{} // closed once released
}

type held struct {
	m    *protocol.Message
	skip bool // Except left this connection out: a position, not a message
}

func (hb *holdback) offer(m *protocol.Message, skip bool, bound int) {
	if len(hb.msgs) >= bound {
		hb.overflow = true
		return
	}
	hb.msgs = append(hb.msgs, held{m: m, skip: skip})
}

// cursorLocked returns the cursor of a room, creating it when asked;
// c.histMu is held.
func (c *conn) cursorLocked(name string, create bool) *cursor {
	for _, cur := range c.cursors {
		if cur.room == name {
			return cur
		}
	}
	if !create {
		return nil
	}
	cur := &cursor{room: name}
	c.cursors = append(c.cursors, cur)
	return cur
}

// forgetCursor drops the cursor of a room the connection left. A recovery
// of the room in progress finds it gone and stops.
func (c *conn) forgetCursor(name string) {
	c.histMu.Lock()
	defer c.histMu.Unlock()
	for i, cur := range c.cursors {
		if cur.room == name {
			c.cursors[i] = c.cursors[len(c.cursors)-1]
			c.cursors[len(c.cursors)-1] = nil
			c.cursors = c.cursors[:len(c.cursors)-1]
			return
		}
	}
}

// cursorPos returns the position the connection was sent of a room.
func (c *conn) cursorPos(name string) protocol.Position {
	c.histMu.Lock()
	defer c.histMu.Unlock()
	if cur := c.cursorLocked(name, false); cur != nil {
		return cur.pos
	}
	return protocol.Position{}
}

// holdRoom starts holding back a room's live messages, once a recovery of
// the room already in progress (a repair) has released them.
func (c *conn) holdRoom(ctx context.Context, name string) (*holdback, error) {
	for {
		c.histMu.Lock()
		cur := c.cursorLocked(name, true)
		if cur.hold == nil {
			hb := &holdback{done: make(chan struct{})}
			cur.hold = hb
			c.histMu.Unlock()
			return hb, nil
		}
		busy := cur.hold.done
		c.histMu.Unlock()
		recoveryStep("hold-wait")
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// toTracked delivers a live message of a room with history to c: in order,
// once, or held back while the room is recovered for c.
func (f *fanout) toTracked(c *conn) {
	m := f.msg
	skip := c.excluded(f.except)
	c.histMu.Lock()
	defer c.histMu.Unlock()
	cur := c.cursorLocked(m.Room, true)
	if hb := cur.hold; hb != nil {
		hb.offer(m, skip, f.h.opts.SendQueueMessages)
		return
	}
	last := cur.pos
	switch {
	case last.Epoch == m.Pos.Epoch && m.Pos.Offset <= last.Offset:
		return // sent already
	case last.Epoch == m.Pos.Epoch && m.Pos.Offset > last.Offset+1:
		hb := &holdback{done: make(chan struct{})}
		hb.offer(m, skip, f.h.opts.SendQueueMessages)
		cur.hold = hb
		f.repairs = append(f.repairs, repair{c: c, room: m.Room, since: last, hb: hb})
		return
	case last.Epoch != "" && last.Epoch != m.Pos.Epoch:
		// The stream started again: what came after last is lost to c.
		f.h.recoverSignal(c, m.Room, last)
	}
	if skip || f.queueAt(c) {
		cur.pos = m.Pos
	}
}

// repair is a gap found by a fan-out, repaired once the locks are let go.
type repair struct {
	c     *conn
	room  string
	since protocol.Position
	hb    *holdback
}

// repairGap fills a gap in what c was sent of a room from history: one
// read, shared with the other connections of this node that miss the same
// messages. When the history cannot fill it, c is told to recover.
func (h *Hub) repairGap(rp repair) {
	c := rp.c
	defer h.recoverPanic("repair", c.meta) // observers and transports are user code
	// Not a child of c.ctx: see releaseAuto.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), h.opts.HandlerTimeout)
	defer cancel()
	c.releaseHeld(ctx, rp.room, rp.hb, c.fill(ctx, rp.room, rp.since))
}

// fill sends c, from history, what came after pos in a room, and returns
// the room's new position; when the history cannot give all of it, c is
// told to recover and pos is returned.
func (c *conn) fill(ctx context.Context, name string, pos protocol.Position) protocol.Position {
	since := adapter.Position(pos)
	rd, err := c.h.readHistory(ctx, c.h.routeOf(name), &since)
	if err != nil || !rd.res.Complete {
		c.h.log.Warn("gap_unrepaired", c.meta.attrs(slog.String("room", name), slog.Any("error", err))...)
		c.h.recoverSignal(c, name, pos)
		return pos
	}
	top := protocol.Position(rd.res.Top)
	if pos.Epoch != top.Epoch {
		pos = protocol.Position{Epoch: top.Epoch}
	}
	if got := c.replay(ctx, rd.entries, pos); len(rd.entries) > 0 && got != top {
		// Cut short (the queue stayed full, the connection closed): the
		// rest is a gap the client must recover.
		c.h.recoverSignal(c, name, got)
		return got
	}
	c.h.log.Info("gap_repaired", c.meta.attrs(slog.String("room", name), slog.Int("missed", len(rd.entries)))...)
	return top
}

// recoverSignal sends c the $recover event of a room: the hub could not
// give it every message after pos, and the client should join the room
// with since to learn whether it can recover.
func (h *Hub) recoverSignal(c *conn, name string, pos protocol.Position) {
	if c.tracker != nil {
		c.tracker.Lost(name) // the transport has a recovery of its own
		return
	}
	data, _ := json.Marshal(positionData(pos))
	c.sendClass(wire.Broadcast, &protocol.Message{Kind: protocol.MsgEvent, Event: recoverEvent, Room: name, Data: data})
}

// positionJSON is a position in a join ack, the welcome or $recover.
type positionJSON struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

func positionData(p protocol.Position) positionJSON {
	return positionJSON{Offset: p.Offset, Epoch: p.Epoch}
}

// replay sends c the entries of a history read that come after from, but
// those whose publisher left c out, as events at their positions. It
// returns the position it reached: the last entry's when every one was
// sent, the last one sent when it was cut short (ctx ended, c closed), so
// that what follows is released from there and the rest is a gap.
func (c *conn) replay(ctx context.Context, entries []replayed, from protocol.Position) protocol.Position {
	pos := from
	for i := range entries {
		e := &entries[i]
		at := protocol.Position{Offset: e.offset, Epoch: from.Epoch}
		if !c.excluded(e.rl.except) {
			m := e.rl.msg
			m.Pos = at
			if !c.sendPaced(ctx, &m) {
				return pos
			}
		}
		pos = at
	}
	return pos
}

// excluded reports whether a message whose publisher left out the
// connection except was not for c: c is that connection, or resumes it.
func (c *conn) excluded(except string) bool {
	return except != "" && (except == c.id || slices.Contains(c.prevIDs, except))
}

// told tells a transport that keeps positions where its client starts in
// a room, without an event: the top of the room when it joined, or the
// position a resume continues from.
func (c *conn) told(name string, pos protocol.Position) {
	if c.tracker != nil && pos.Epoch != "" {
		c.tracker.Told(name, pos)
	}
}

// missed counts the entries replay sends c.
func (c *conn) missed(entries []replayed) int {
	n := 0
	for i := range entries {
		if !c.excluded(entries[i].rl.except) {
			n++
		}
	}
	return n
}

// releaseHeld sends the held-back messages newer than pos, in order, then
// lets the room's live messages through again. Messages dropped past the
// bound, and a gap among those held, are filled from history.
func (c *conn) releaseHeld(ctx context.Context, name string, hb *holdback, pos protocol.Position) {
	defer close(hb.done)
	for {
		c.histMu.Lock()
		cur := c.cursorLocked(name, false)
		if cur == nil || cur.hold != hb {
			c.histMu.Unlock()
			return
		}
		msgs, overflow := hb.msgs, hb.overflow
		hb.msgs, hb.overflow = nil, false
		if len(msgs) == 0 && (!overflow || ctx.Err() != nil) {
			if overflow {
				// Out of time: the client recovers by itself.
				c.h.recoverSignal(c, name, pos)
			}
			cur.pos, cur.hold = pos, nil
			c.histMu.Unlock()
			return
		}
		c.histMu.Unlock()
		for _, hm := range msgs {
			pos = c.sendHeld(ctx, name, hm, pos)
		}
		if overflow && ctx.Err() == nil {
			pos = c.fill(ctx, name, pos)
		}
	}
}

// sendHeld sends one held-back message after pos and returns the new
// position.
func (c *conn) sendHeld(ctx context.Context, name string, hm held, pos protocol.Position) protocol.Position {
	m := hm.m
	switch {
	case pos.Epoch == m.Pos.Epoch && m.Pos.Offset <= pos.Offset:
		return pos
	case pos.Epoch == m.Pos.Epoch && m.Pos.Offset > pos.Offset+1:
		if pos = c.fill(ctx, name, pos); pos.Epoch == m.Pos.Epoch && m.Pos.Offset <= pos.Offset {
			return pos
		}
	case pos.Epoch != "" && pos.Epoch != m.Pos.Epoch:
		c.h.recoverSignal(c, name, pos)
	}
	if !hm.skip && !c.sendPaced(ctx, m) {
		return pos
	}
	return m.Pos
}

// sendPaced queues m as a broadcast, waiting while the queue is full for
// the writer to drain it, until ctx ends: a replay may be longer than the
// queue. It reports whether m was queued; at ctx's end the slow-consumer
// policy applies.
func (c *conn) sendPaced(ctx context.Context, m *protocol.Message) bool {
	var buf [2]wire.Frame
	frames := c.encode(buf[:0], m)
	send := func() wire.Result { return c.sink.Send(wire.Broadcast, frames...) }
	if c.tracker != nil && m.Room != "" && m.Pos.Epoch != "" {
		send = func() wire.Result { return c.tracker.SendAt(nil, m.Room, m.Pos, frames...) }
	}
	wait := time.Millisecond
	for {
		switch r := send(); r {
		case wire.Queued:
			return true
		case wire.Full:
		default:
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.queued(wire.Full, wire.Broadcast)
			return false
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
