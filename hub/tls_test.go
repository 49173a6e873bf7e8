package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/hub"
)

// Over crypto/tls the writer cannot write without blocking: every busy
// connection writes from a goroutine of its own, through the same queue and
// control lane. Fan-out reaches every member in order.
func TestTLSFanOut(t *testing.T) {
	e := newTLSEnv(t, func(o *hub.Options) { o.Rooms = allowAll })
	const members, messages = 20, 200
	clients := make([]*client, members)
	for i := range clients {
		clients[i] = e.connect(claims{sub: "tls" + string(rune('a'+i))})
		clients[i].send(map[string]any{"type": "join", "id": 1, "room": "conversation:tls"})
		if f := clients[i].next(); f.Type != "ack" {
			t.Fatalf("join: %+v", f)
		}
	}
	for i := range messages {
		if err := e.hub.Broadcast(context.Background(), "conversation:tls", "tick", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	for ci, c := range clients {
		for i := range messages {
			f := c.next()
			var d struct{ N int }
			_ = json.Unmarshal(f.Data, &d)
			if f.Event != "tick" || d.N != i {
				t.Fatalf("client %d: message %d = %+v", ci, i, f)
			}
		}
	}
}

// A TLS client that stops reading is disconnected like any other, and the
// memory it pinned is released.
func TestTLSSlowConsumer(t *testing.T) {
	e := newTLSEnv(t, func(o *hub.Options) {
		o.SendQueueMessages = 16
		o.SendQueueBytes = 256 << 10
	})
	e.connect(claims{sub: "slow"}) // never reads again
	base := heapAfterGC()
	big := strings.Repeat("x", 16<<10)
	for sent := 0; e.hub.Connections() > 0 && sent < 20000; sent++ {
		if err := e.hub.ToUser(t.Context(), "slow", "blob", big); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the slow TLS consumer to be dropped", func() bool { return e.hub.Connections() == 0 })
	eventually(t, "the reason in the log", func() bool { return strings.Contains(e.log.String(), `"reason":"slow_consumer"`) })
	assertBounded(t, base, 8<<20)
}
