package hub_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// A handler that ignores its context outlives its deadline: the client gets
// TIMEOUT, the user's admission slot stays taken until the handler returns
// (even after the connection is gone), and a user with too many such
// handlers gets no new one run.
func TestHandlersPastTheirDeadline(t *testing.T) {
	var admitted, released atomic.Int32
	unblock := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(free)
	var started atomic.Int32
	e := newEnv(t, func(o *hub.Options) {
		o.HandlerTimeout = 20 * time.Millisecond
		o.EventRate = hub.Limit{Rate: 1000, Burst: 1000}
		o.Admit = func(context.Context, string) (func(), error) {
			admitted.Add(1)
			return func() { released.Add(1) }, nil
		}
	})
	hub.Handle(e.hub, "stuck", func(ctx hub.Context, in struct{}) (struct{}, error) {
		started.Add(1)
		<-unblock // ignores ctx
		return struct{}{}, nil
	})
	c := e.connect(claims{sub: "mallory"})
	for i := range 8 {
		c.send(map[string]any{"type": "event", "id": i + 1, "event": "stuck"})
		if f := c.next(); f.Code != hub.CodeTimeout {
			t.Fatalf("message %d: got %+v, want TIMEOUT", i+1, f)
		}
	}
	// The ninth is not run at all.
	c.send(map[string]any{"type": "event", "id": 9, "event": "stuck"})
	if f := c.next(); f.Code != hub.CodeTimeout || f.Message != "server busy" {
		t.Fatalf("got %+v, want a busy TIMEOUT", f)
	}
	if n := started.Load(); n != 8 {
		t.Fatalf("%d handlers started, want 8", n)
	}
	// Gone, but its handlers still run: the slot is still held.
	c.ws.CloseNow()
	eventually(t, "the connection to end", func() bool { return e.hub.Connections() == 0 })
	if r := released.Load(); r != 0 {
		t.Fatalf("slot released while 8 handlers still run")
	}
	free()
	eventually(t, "the slot to be released once the handlers return", func() bool { return released.Load() == 1 })
	if a := admitted.Load(); a != 1 {
		t.Fatalf("admitted %d", a)
	}
	// And the user may run handlers again.
	c2 := e.connect(claims{sub: "mallory"})
	c2.send(map[string]any{"type": "event", "id": 1, "event": "stuck"})
	if f := c2.next(); f.Type != "ack" {
		t.Fatalf("got %+v after the handlers returned, want an ack", f)
	}
}
