package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/protocol"
	wsproto "github.com/wsgate/wsgate/protocol"
)

// joinAck is the data of the ack of a join of a room with history: the
// room's top, and with since, whether the client recovered and how many
// events follow the ack. Offset and Epoch are left out when the history
// could not be read.
type joinAck struct {
	Offset    *uint64 `json:"offset,omitempty"`
	Epoch     string  `json:"epoch,omitempty"`
	Recovered *bool   `json:"recovered,omitempty"`
	Missed    *int    `json:"missed,omitempty"`
}

// joinHistory joins c to a room with history (or stays in it) and answers
// with the room's top; with in.Since, it recovers: the events c missed
// follow the ack, all of them or none (recovered false), then the live
// ones. The room's live messages for c are held back meanwhile.
func (c *conn) joinHistory(ctx context.Context, in protocol.Inbound, r route) error {
	if in.Since == nil && c.inRoom(r.room) {
		c.ackStanding(in, c.cursorPos(r.room))
		return nil
	}
	hb, err := c.holdRoom(ctx, r.room)
	if err != nil {
		return err
	}
	recoveryStep("held")
	if in.Since == nil {
		// Another join of the room may have won the race meanwhile.
		if pos, in2 := c.standing(ctx, r.room, hb); in2 {
			c.ackStanding(in, pos)
			return nil
		}
	}
	if err := c.h.join(c, r.room); err != nil {
		c.abandonHold(ctx, r.room, hb)
		return err
	}
	recoveryStep("joined")
	var since *adapter.Position
	if in.Since != nil {
		p := adapter.Position(*in.Since)
		since = &p
	}
	rd, rerr := c.h.readHistory(ctx, r, since)
	recoveryStep("read")
	known := rerr == nil && rd.res.Top.Epoch != ""
	base := c.cursorPos(r.room)
	var ack joinAck
	if known {
		base = protocol.Position(rd.res.Top)
		ack.Offset, ack.Epoch = &base.Offset, base.Epoch
	}
	var entries []replayed
	ok := false // recovered
	if since != nil {
		c.histMu.Lock()
		overflow := hb.overflow
		c.histMu.Unlock()
		ok = known && rd.res.Complete && !overflow
		n := 0
		if ok {
			entries = rd.entries
			n = c.missed(entries)
		}
		ack.Recovered, ack.Missed = &ok, &n
		attrs := []any{slog.String("room", r.room), slog.Bool("recovered", ok), slog.Int("missed", n)}
		if rerr != nil {
			attrs = append(attrs, slog.String("error", rerr.Error()))
		}
		c.h.log.Info("recovery", c.msgAttrs(attrs...)...)
	}
	from := base
	if ok {
		from = protocol.Position(*since)
	}
	// Where the client starts, then the membership: a transport that keeps
	// positions records both before the join is answered.
	c.told(r.room, from)
	c.joined(r.room, true)
	if in.HasID {
		data, _ := json.Marshal(ack)
		c.send(&protocol.Message{Kind: protocol.MsgAck, ID: in.ID, Data: data})
	}
	recoveryStep("acked")
	if len(entries) > 0 {
		base = c.replay(ctx, entries, from)
	}
	recoveryStep("replayed")
	c.releaseHeld(ctx, r.room, hb, base)
	return nil
}

// abandonHold lets a room's held messages through after a join failed,
// and drops the cursor holdRoom made when c is not in the room.
func (c *conn) abandonHold(ctx context.Context, name string, hb *holdback) {
	c.releaseHeld(ctx, name, hb, c.cursorPos(name))
	if !c.inRoom(name) {
		c.forgetCursor(name)
	}
}

// inRoom reports whether c is in a room.
func (c *conn) inRoom(name string) bool { return c.h.index.Has(name, c) }

// standing lets a room's held messages through from where c stands when c
// is in the room already (a join that lost a race with another, or a join
// of a room c is in): its events flow, and none in flight may be skipped.
func (c *conn) standing(ctx context.Context, name string, hb *holdback) (protocol.Position, bool) {
	if !c.inRoom(name) {
		return protocol.Position{}, false
	}
	pos := c.cursorPos(name)
	c.releaseHeld(ctx, name, hb, pos)
	return pos, true
}

// ackStanding answers a join of a room c is in with where c stands.
func (c *conn) ackStanding(in protocol.Inbound, pos protocol.Position) {
	if !in.HasID {
		return
	}
	var ack joinAck
	if pos.Epoch != "" {
		ack.Offset, ack.Epoch = &pos.Offset, pos.Epoch
	}
	data, _ := json.Marshal(ack)
	c.send(&protocol.Message{Kind: protocol.MsgAck, ID: in.ID, Data: data})
}

// joinTracked joins c, whose transport keeps positions, to a room with
// history the server chose, as a client's join does: the room's live
// messages are held back until its top is read, and the transport learns
// that its client starts there before the join is recorded, so that a
// resume knows the room's position even before its first event.
//
// report says whether the transport is told of the join (Joined): not for
// an automatic room, which a resume derives from the identity again.
func (c *conn) joinTracked(r route, report bool) error {
	// Not a child of c.ctx: see releaseAuto.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.h.opts.HandlerTimeout)
	defer cancel()
	hb, err := c.holdRoom(ctx, r.room)
	if err != nil {
		return err
	}
	recoveryStep("tracked-held")
	if _, in := c.standing(ctx, r.room, hb); in {
		return nil // another join of the room won the race
	}
	if err := c.h.join(c, r.room); err != nil {
		c.abandonHold(ctx, r.room, hb)
		return err
	}
	base := c.cursorPos(r.room)
	if rd, err := c.h.readHistory(ctx, r, nil); err == nil && rd.res.Top.Epoch != "" {
		base = protocol.Position(rd.res.Top)
		c.told(r.room, base)
	} else if err != nil {
		c.h.log.Warn("position_unknown", c.meta.attrs(slog.String("room", r.room), slog.String("error", err.Error()))...)
	}
	if report {
		c.joined(r.room, false)
	}
	c.releaseHeld(ctx, r.room, hb, base)
	return nil
}

// testHookRecovery is a test hook, nil outside tests: the tests of the
// merge of history with live messages set it to publish between every step
// of a recovery. It is set before the hub starts and reset after it stops.
var testHookRecovery atomic.Pointer[func(step string)]

func recoveryStep(step string) {
	if fn := testHookRecovery.Load(); fn != nil {
		(*fn)(step)
	}
}

// autoHold is an automatic room with history whose live messages are held
// back until the welcome, which carries its top, is out.
type autoHold struct {
	r   route
	hb  *holdback
	top protocol.Position
	// For a room of a Resume: the position its client last received (nil
	// when unknown), and what the read after it gave.
	resumed bool
	since   *adapter.Position
	rd      *historyRead
}

// holdAuto starts holding back the live messages of a room with history
// that the connection is about to receive without asking (its user room,
// its automatic rooms); nil when the room keeps none.
func (c *conn) holdAuto(holds []autoHold, r route) []autoHold {
	if !r.keeps() || r.room == "" {
		return holds
	}
	for _, a := range holds {
		if a.r.room == r.room {
			return holds
		}
	}
	// A fresh connection has no recovery in progress: this does not wait.
	hb, err := c.holdRoom(context.Background(), r.room)
	if err != nil {
		return holds
	}
	return append(holds, autoHold{r: r, hb: hb})
}

// readTops reads the top of every held room, concurrently, creating the
// rooms' epochs so that a client that receives nothing yet can recover
// later. A room whose top could not be read is left out of the welcome.
func (c *conn) readTops(holds []autoHold) []protocol.RoomPosition {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.h.opts.HandlerTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range holds {
		wg.Go(func() {
			a := &holds[i]
			rd, err := c.h.readHistory(ctx, a.r, a.since)
			if err != nil {
				c.h.log.Warn("position_unknown", c.meta.attrs(slog.String("room", a.r.room), slog.String("error", err.Error()))...)
				a.top = c.cursorPos(a.r.room)
				return
			}
			a.top, a.rd = protocol.Position(rd.res.Top), rd
		})
	}
	wg.Wait()
	var out []protocol.RoomPosition
	for _, a := range holds {
		// A room whose name the wire refuses in a join (a user room of a
		// long user id) cannot be recovered by the client: no position.
		if a.top.Epoch != "" && wsproto.ValidRoom(a.r.room) {
			out = append(out, protocol.RoomPosition{Room: a.r.room, Position: a.top})
		}
	}
	return out
}

// releaseAuto lets the held rooms' live messages through, those newer than
// the tops the welcome carried; with replay (a Resume that recovered),
// after the events each resumed room's client missed.
func (c *conn) releaseAuto(holds []autoHold, replay bool) {
	// Not a child of c.ctx, which would keep the bookkeeping of a
	// cancelled child for the rest of an idle connection's life; a closed
	// connection's writer refuses what is sent, which ends the release.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.h.opts.HandlerTimeout)
	defer cancel()
	for _, a := range holds {
		pos := a.top
		if replay && a.resumed && len(a.rd.entries) > 0 {
			pos = c.replay(ctx, a.rd.entries, protocol.Position(*a.since))
		}
		c.releaseHeld(ctx, a.r.room, a.hb, pos)
	}
}
