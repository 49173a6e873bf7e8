package hub

import (
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// send queues a message for this connection alone (replies, errors).
func (c *conn) send(m *protocol.Message) bool { return c.sendClass(wire.Reply, m) }

// sendClass encodes m with the connection's codec and queues it.
func (c *conn) sendClass(class wire.Class, m *protocol.Message) bool {
	var buf [2]wire.Frame
	return c.queued(c.sink.Send(class, c.encode(buf[:0], m)...), class)
}

// encode appends m's frames in the connection's codec and compression to
// dst.
func (c *conn) encode(dst []wire.Frame, m *protocol.Message) []wire.Frame {
	frames := c.codec.Encode(dst, m)
	if c.compress {
		frames = deflateFrames(frames, c.h.opts.CompressionThreshold)
	}
	return frames
}

// queued applies the slow-consumer policy to what the writer did with a
// unit. Only broadcasts are dropped: a reply that does not fit closes the
// connection, so a message with an id is never left unanswered while the
// connection lives.
func (c *conn) queued(r wire.Result, class wire.Class) bool {
	switch r {
	case wire.Queued:
		return true
	case wire.Full:
		if c.h.opts.SlowConsumer == Drop && class == wire.Broadcast {
			c.dropped.Add(1)
			c.h.obs.Dropped()
		} else if c.slowConsumer() {
			c.h.obs.SlowConsumer()
		}
	}
	return false
}

// slowConsumer closes a connection whose queue overflowed with 4008, ahead
// of what is still queued. It reports whether this started the close. The
// reason is recorded first, as every other close does: a bridged transport
// may report the connection over before startClose returns. (The first
// reason recorded wins, so a close already under way keeps its own.)
func (c *conn) slowConsumer() bool {
	c.setReason("slow_consumer")
	return c.startClose(wire.StatusCode(CloseSlowConsumer), "slow consumer", nil, true)
}

// deflateFrames compresses the frames at or above threshold bytes, for a
// connection that negotiated permessage-deflate.
func deflateFrames(frames []wire.Frame, threshold int) []wire.Frame {
	for i := range frames {
		if f := &frames[i]; !f.Deflated && len(f.Payload) >= threshold {
			f.Payload, f.Deflated = wire.Deflate(f.Payload), true
		}
	}
	return frames
}

func (c *conn) replyError(in protocol.Inbound, code, msg string) {
	c.send(&protocol.Message{Kind: protocol.MsgError, ID: in.ID, HasID: in.HasID, Code: code, Text: msg})
}

func (c *conn) ack(in protocol.Inbound) {
	if in.HasID {
		c.send(&protocol.Message{Kind: protocol.MsgAck, ID: in.ID})
	}
}

// sink is where a connection's frames go: its own WebSocket's writer, or a
// bridging transport (see internal/bridge).
type sink interface {
	Send(class wire.Class, frames ...wire.Frame) wire.Result
	SendBatch(b *wire.Batch, class wire.Class, frames ...wire.Frame) wire.Result
	Close(code wire.StatusCode, reason string, now bool, final ...wire.Frame) bool
}
