package hub

import (
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
	wsproto "github.com/wsgate/wsgate/protocol"
)

// startClose asks the writer for the close frame, after final; with now,
// before the frames still queued. It returns whether this was the first
// close asked for: later ones are ignored. From here on, inbound data is
// read but not acted on.
func (c *conn) startClose(code wire.StatusCode, reason string, final []wire.Frame, now bool) bool {
	c.closing.Store(true)
	return c.sink.Close(code, reason, now, final...)
}

// closeWith closes the connection with code after the frames already
// queued, preceded by a bye when byeReason is set. Later calls are ignored.
func (c *conn) closeWith(code wsproto.CloseCode, reason, byeReason string) {
	var bye []wire.Frame
	if byeReason != "" {
		bye = c.codec.Encode(nil, &protocol.Message{Kind: protocol.MsgBye, Text: byeReason})
	}
	c.startClose(wire.StatusCode(code), reason, bye, false)
}
