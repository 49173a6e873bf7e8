package hub

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// deliver is the broker handler: fan a published message out to the local
// members of its topic. It never blocks: queueing only appends, and the
// connections whose writer must start go to the pool in one batch.
func (h *Hub) deliver(m adapter.Message) {
	topic := m.Topic
	rl, err := parseRelay(m.Payload)
	if err != nil {
		h.log.Warn("relay_invalid", slog.String("topic", topic))
		return
	}
	switch rl.kind {
	case relayDisconnect:
		h.disconnectLocal(topic, rl.reason)
		return
	case relayJoin, relayLeave:
		// A join subscribes the broker to the room: not on the broker's
		// delivery goroutine, which must not block.
		go h.membershipLocal(topic, rl.kind, rl.reason)
		return
	}
	if !m.Pos.IsZero() {
		rl.msg.Pos = protocol.Position(m.Pos)
	}
	end := h.opts.Tracer.Deliver(rl.carrier, topic, rl.msg.Event)
	f := fanout{h: h, msg: &rl.msg, except: rl.except, tracked: rl.msg.Pos.Epoch != "" && rl.msg.Room != ""}
	f.deliver(topic)
	for _, rp := range f.repairs {
		go h.repairGap(rp)
	}
	// Observers and tracers are user code: called once the locks are let go.
	end(f.delivered)
	h.obs.Delivered(f.delivered)
	for range f.dropped {
		h.obs.Dropped()
	}
	for range f.slow {
		h.obs.SlowConsumer()
	}
}

// fanout is one delivery to the local members of a topic. The message is
// encoded at most once per codec and compression in use among them, and
// every recipient of an encoding shares its frames.
type fanout struct {
	h      *Hub
	msg    *protocol.Message
	except string
	// tracked: a message of a room with history, delivered in order
	// through each recipient's cursor (toTracked)
	tracked bool
	batch   *wire.Batch
	units   [4]unit // the encodings made so far; more are rare and not kept
	n       int

	delivered, dropped, slow int
	repairs                  []repair // gaps found, repaired once the locks are let go
}

type unit struct {
	codec    protocol.Codec
	deflated bool
	frames   []wire.Frame
}

func (f *fanout) deliver(topic string) {
	f.batch = f.h.pool.NewBatch()
	defer f.batch.Flush()
	if topic == topicAll {
		f.h.connsMu.RLock()
		defer f.h.connsMu.RUnlock()
		for _, c := range f.h.conns {
			f.to(c)
		}
		return
	}
	if name, ok := strings.CutPrefix(topic, topicRoomPrefix); ok {
		f.h.index.Each(name, f.to)
		return
	}
	if user, ok := strings.CutPrefix(topic, topicUserPrefix); ok {
		f.h.connsMu.RLock()
		defer f.h.connsMu.RUnlock()
		for _, c := range f.h.users[user] {
			f.to(c)
		}
	}
}

// to queues the message for c. It runs under the room index's or the
// connection table's read lock: nothing here calls user code.
func (f *fanout) to(c *conn) {
	if f.tracked {
		f.toTracked(c)
		return
	}
	if c.id == f.except {
		return
	}
	f.queue(c)
}

// queue queues the message for c and reports whether it was.
func (f *fanout) queue(c *conn) bool {
	return f.queued(c, c.sink.SendBatch(f.batch, wire.Broadcast, f.encoded(c)...))
}

// queueAt queues a message of a room with history, at its position for a
// transport that keeps positions.
func (f *fanout) queueAt(c *conn) bool {
	if c.tracker == nil {
		return f.queue(c)
	}
	return f.queued(c, c.tracker.SendAt(f.batch, f.msg.Room, f.msg.Pos, f.encoded(c)...))
}

// queued counts what became of a unit queued for c.
func (f *fanout) queued(c *conn, r wire.Result) bool {
	switch r {
	case wire.Queued:
		f.delivered++
		return true
	case wire.Full:
		if f.h.opts.SlowConsumer == Drop {
			c.dropped.Add(1)
			f.dropped++
		} else if c.slowConsumer() {
			f.slow++
		}
	}
	return false
}

// encoded returns the message's frames for c's codec and compression.
func (f *fanout) encoded(c *conn) []wire.Frame {
	deflated := c.compress && len(f.msg.Data) >= f.h.opts.CompressionThreshold
	for i := range f.n {
		if u := &f.units[i]; u.codec == c.codec && u.deflated == deflated {
			return u.frames
		}
	}
	frames := c.codec.Encode(nil, f.msg)
	if deflated {
		frames = deflateFrames(frames, f.h.opts.CompressionThreshold)
	}
	if f.n < len(f.units) {
		f.units[f.n] = unit{codec: c.codec, deflated: deflated, frames: frames}
		f.n++
	}
	return frames
}

// localConns returns this node's connections a room or user topic is for.
func (h *Hub) localConns(topic string) []*conn {
	if user, ok := strings.CutPrefix(topic, topicUserPrefix); ok {
		return h.userConns(user)
	}
	var out []*conn
	if name, ok := strings.CutPrefix(topic, topicRoomPrefix); ok {
		h.index.Each(name, func(c *conn) { out = append(out, c) })
	}
	return out
}

func (h *Hub) disconnectLocal(topic, reason string) {
	if reason == "" {
		reason = "disconnected"
	}
	for _, c := range h.localConns(topic) {
		c.setReason("disconnected_by_server")
		c.closeWith(CloseUnauthorized, "disconnected", reason)
	}
}

// membershipLocal applies JoinUser or LeaveUser to this node's connections.
func (h *Hub) membershipLocal(topic string, kind byte, name string) {
	defer h.recoverPanic("membership", requestMeta{})
	for _, c := range h.localConns(topic) {
		if kind == relayLeave {
			h.leave(c, name)
			c.forgetAuto(name)
			continue
		}
		if err := h.joinBy(c, name); err != nil && !errors.Is(err, ErrUnknownConnection) {
			h.log.Warn("join_user_failed", c.meta.attrs(slog.String("room", name), slog.String("reason", err.Error()))...)
		}
	}
}
