package hub

import (
	"context"
	"log/slog"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/room"
)

// How a bridged connection resumes a session (bridge.Resume, Socket.IO's
// connection state recovery).
//
// The new connection is established as any other — the token verified,
// admission, its automatic rooms those of the identity it has now — and
// before its welcome it joins the session's other rooms again: a room the
// client had joined itself only when the room policy grants it now, a room
// the server had joined it to as the server did. Every room with history
// is held back, as the automatic ones are, and read after the position the
// client last received. The resume recovered when every room with history
// of the session was joined again and read whole after a known position,
// within MaxRecovery and without overflowing the hold-back; then the
// missed events follow the welcome, room by room in offset order, then the
// live ones. Otherwise nothing missed is replayed and the live events
// start after each room's top: all or nothing, as a join with since.

// resumed is what became of a Resume before the welcome.
type resumed struct {
	ok     bool
	missed int
	failed string // the first reason the resume did not recover, for the log
}

func (rs *resumed) fail(reason string) {
	if rs.failed == "" {
		rs.failed = reason
	}
}

// rejoin joins the rooms of a Resume that are not automatic rooms, and
// marks every held room of the Resume with the position its client had.
func (c *conn) rejoin(id auth.Identity, holds []autoHold, resume *bridge.Resume) ([]autoHold, resumed) {
	var rs resumed
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.h.opts.HandlerTimeout)
	defer cancel()
	if id.UserID != resume.UserID || id.TenantID != resume.TenantID {
		c.h.log.Warn("resume_refused", c.meta.attrs(slog.String("reason", "other_user"))...)
		rs.fail("other_user")
		return holds, rs
	}
	for _, rr := range resume.Rooms {
		if !room.Valid(rr.Room) {
			rs.fail("invalid_room")
			continue
		}
		if i := heldAt(holds, rr.Room); i >= 0 {
			holds[i].mark(rr)
			continue
		}
		if c.isAuto(rr.Room) || rr.Auto {
			continue // an automatic room without history, or no longer one
		}
		if rr.ByClient {
			if err := c.h.opts.Rooms.CanJoin(ctx, id, rr.Room); err != nil {
				c.h.log.Info("room_not_restored", c.meta.attrs(slog.String("room", rr.Room), slog.String("error", err.Error()))...)
				rs.fail("room_refused")
				continue
			}
		}
		r := c.h.routeOf(rr.Room)
		n := len(holds)
		holds = c.holdAuto(holds, r)
		if err := c.h.join(c, rr.Room); err != nil {
			c.h.log.Warn("room_not_restored", c.meta.attrs(slog.String("room", rr.Room), slog.String("error", err.Error()))...)
			rs.fail("join_failed")
			if len(holds) > n {
				c.forgetCursor(rr.Room)
				holds = holds[:n]
			}
			continue
		}
		c.tracker.Joined(rr.Room, rr.ByClient)
		if len(holds) > n {
			holds[n].mark(rr)
		}
	}
	return holds, rs
}

func heldAt(holds []autoHold, name string) int {
	for i := range holds {
		if holds[i].r.room == name {
			return i
		}
	}
	return -1
}

// mark records that a held room belongs to the Resume, read after since.
func (a *autoHold) mark(rr bridge.ResumeRoom) {
	a.resumed = true
	if rr.Since != nil {
		p := adapter.Position(*rr.Since)
		a.since = &p
	}
}

// decide settles, once the held rooms were read, whether the resume
// recovered, and logs it.
func (rs *resumed) decide(c *conn, holds []autoHold) {
	for i := range holds {
		a := &holds[i]
		if !a.resumed {
			continue
		}
		c.histMu.Lock()
		overflow := a.hb.overflow
		c.histMu.Unlock()
		switch {
		case a.since == nil:
			rs.fail("position_unknown")
		case a.rd == nil || a.top.Epoch == "":
			rs.fail("history_unavailable")
		case !a.rd.res.Complete:
			rs.fail("not_in_history")
		case overflow:
			rs.fail("overflow")
		default:
			rs.missed += c.missed(a.rd.entries)
		}
	}
	rs.ok = rs.failed == ""
	if !rs.ok {
		rs.missed = 0
	}
	attrs := []any{slog.Bool("recovered", rs.ok), slog.Int("missed", rs.missed)}
	if rs.failed != "" {
		attrs = append(attrs, slog.String("reason", rs.failed))
	}
	c.h.log.Info("session_resumed", c.meta.attrs(attrs...)...)
}
