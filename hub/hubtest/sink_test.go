package hubtest

import (
	"testing"

	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

func text(p []byte) wire.Frame { return wire.Frame{Op: wire.OpText, Payload: p} }

// The sink keeps the writer's contract that the hub relies on, and reads
// every field of an event frame, its place in a room's stream included.
func TestSinkRecordsAsTheWriterQueues(t *testing.T) {
	c := &Conn{done: make(chan struct{})}
	s := sink{c}
	var n protocol.Native
	event := text(n.AppendEventAt(nil, "news", "topic:x", protocol.Position{Offset: 7, Epoch: "e1"}, []byte(`{"a":1}`)))

	if r := s.Send(wire.Broadcast, event); r != wire.NotOpen {
		t.Fatalf("a broadcast before the welcome: %v, want NotOpen", r)
	}
	if r := s.Send(wire.Open, text(n.AppendWelcome(nil, protocol.Welcome{ConnID: "c1", UserID: "u"}))); r != wire.Queued {
		t.Fatalf("the welcome: %v", r)
	}
	if r := s.Send(wire.Broadcast, event); r != wire.Queued {
		t.Fatalf("a broadcast after the welcome: %v", r)
	}
	evs := c.Events()
	if len(evs) != 1 {
		t.Fatalf("recorded %+v", evs)
	}
	if ev := evs[0]; ev.Name != "news" || ev.Room != "topic:x" || ev.Offset != 7 || ev.Epoch != "e1" || string(ev.Data) != `{"a":1}` {
		t.Fatalf("recorded %+v", ev)
	}
	if got, want := evs[0].String(), `news in topic:x at 7/e1 {"a":1}`; got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}

	c.mu.Lock()
	c.ending = true // as Close does: the closes that follow are not the hub's
	c.mu.Unlock()
	if s.Close(wire.StatusCode(1000), "", false) {
		t.Fatal("a close after the end counts as the first")
	}
	if r := s.Send(wire.Reply, text(n.AppendAck(nil, 1, nil))); r != wire.Closed {
		t.Fatalf("a reply once closing: %v, want Closed", r)
	}
}
