package hub

import "testing"

// The ready queue stays FIFO and bounded when it never empties: the consumed
// prefix is reclaimed instead of growing the slice forever.
func TestWriterPoolQueueIsFIFOAndReclaimsItsPrefix(t *testing.T) {
	conns := make([]*conn, 10_000)
	for i := range conns {
		conns[i] = &conn{id: string(rune(i))}
	}
	var p writerPool
	next, popped := 0, 0
	p.ready = append(p.ready, conns[:2000]...)
	next = 2000
	for popped < len(conns) {
		// Pop three, push two: the queue never drains until the end.
		for range 3 {
			c := p.pop()
			if c == nil {
				t.Fatalf("queue empty after %d of %d", popped, next)
			}
			if c != conns[popped] {
				t.Fatalf("pop %d returned connection %q, want %q", popped, c.id, conns[popped].id)
			}
			popped++
			if popped == next {
				break
			}
		}
		for range 2 {
			if next < len(conns) {
				p.ready = append(p.ready, conns[next])
				next++
			}
		}
		if waiting := len(p.ready) - p.head; len(p.ready) > 2*waiting+1024 {
			t.Fatalf("ready holds %d slots for %d waiting connections", len(p.ready), waiting)
		}
	}
	if c := p.pop(); c != nil || len(p.ready) != 0 || p.head != 0 {
		t.Fatalf("drained queue: pop %v, len %d, head %d", c, len(p.ready), p.head)
	}
}
