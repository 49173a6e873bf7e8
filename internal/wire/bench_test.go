package wire

import (
	"sync/atomic"
	"testing"
	"time"
)

// discard takes every write at once, counting bytes: the writers' own cost
// without the kernel's.
type discard struct {
	n    *atomic.Int64
	done chan struct{}
	want int64
}

func (d *discard) TryWrite(p []byte) (int, error) {
	if d.n.Add(int64(len(p))) == d.want {
		close(d.done)
	}
	return len(p), nil
}
func (d *discard) Write(p []byte) (int, error)      { return d.TryWrite(p) }
func (d *discard) SetWriteDeadline(time.Time) error { return nil }

type nopEvents struct{}

func (nopEvents) CloseSent()        {}
func (nopEvents) WriteFailed(error) {}

// BenchmarkFanOut queues one frame for each of 1,000 writers through a
// batch, as the hub's delivery does, and waits until the pool wrote them.
func BenchmarkFanOut(b *testing.B) {
	const writers = 1000
	pool := NewPool(0)
	cfg := &WriterConfig{MaxQueued: 256, MaxQueuedBytes: 1 << 20, WriteTimeout: time.Second, Pool: pool}
	payload := make([]byte, 100)
	frame := Frame{Op: OpText, Payload: payload}
	var total atomic.Int64
	ws := make([]*Writer, writers)
	per := int64(2 + len(payload))
	for i := range ws {
		ws[i] = new(Writer)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		total.Store(0)
		done := make(chan struct{})
		d := &discard{n: &total, done: done, want: per * writers}
		for _, w := range ws {
			w.t, w.try = d, d
			w.cfg, w.ev = cfg, nopEvents{}
			w.flags |= fOpen
		}
		batch := pool.NewBatch()
		for _, w := range ws {
			w.SendBatch(batch, Broadcast, frame)
		}
		batch.Flush()
		<-done
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*writers), "ns/delivery")
}
