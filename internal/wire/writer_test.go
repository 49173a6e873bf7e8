package wire

import (
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// newTestWriter returns a writer on f, served by a pool of one worker when
// pooled is set and by goroutines of its own otherwise.
func newTestWriter(f *fakeTransport, pooled bool) (*Writer, *events) {
	cfg := &WriterConfig{MaxQueued: 256, MaxQueuedBytes: 1 << 20, WriteTimeout: 10 * time.Second}
	var t Transport = blockingOnly{f}
	if pooled {
		cfg.Pool = NewPool(1)
		t = f
	}
	ev := newEvents()
	w := new(Writer)
	w.Init(t, cfg, ev)
	return w, ev
}

func payloads(fs []sent) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.op.String() + ":" + f.payload
	}
	return out
}

func wantFrames(t *testing.T, got []sent, want ...string) {
	t.Helper()
	g := payloads(got)
	if strings.Join(g, "|") != strings.Join(want, "|") {
		t.Fatalf("frames:\n got %q\nwant %q", g, want)
	}
}

func TestWriter(t *testing.T) {
	t.Run("frames_queued_while_the_turn_waits_go_out_in_one_write", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{}
			w, _ := newTestWriter(f, true)
			// The turn is taken but not started until Flush, as in a fan-out.
			b := w.cfg.Pool.NewBatch()
			w.SendBatch(b, Reply, text("a"))
			for _, s := range []string{"b", "c"} {
				if r := w.Send(Reply, text(s)); r != Queued {
					t.Fatalf("Send = %v", r)
				}
			}
			b.Flush()
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:a", "text:b", "text:c")
			if len(f.writes) != 1 || f.blocking != 0 {
				t.Fatalf("writes %v, blocking %d: want one non-blocking write", f.writes, f.blocking)
			}
		})
	})
	t.Run("eagain_with_nothing_written_moves_the_turn_to_a_blocking_goroutine", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{steps: []step{{n: 0, err: syscall.EAGAIN}}}
			w, ev := newTestWriter(f, true)
			b := w.cfg.Pool.NewBatch()
			w.SendBatch(b, Reply, text("hello"))
			w.Send(Reply, text("world"))
			b.Flush()
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:hello", "text:world")
			if f.tries != 1 || f.blocking != 1 {
				t.Fatalf("tries %d blocking %d", f.tries, f.blocking)
			}
			if c, e := ev.counts(); c+e != 0 {
				t.Fatalf("events: %d closes, %d failures", c, e)
			}
			if !f.deadline.IsZero() {
				t.Fatal("the blocking turn left its write deadline on the socket")
			}
		})
	})
	t.Run("a_short_write_is_finished_before_a_pong_queued_meanwhile", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{steps: []step{{n: 5, err: syscall.EAGAIN}}, hold: make(chan struct{})}
			w, _ := newTestWriter(f, true)
			b := w.cfg.Pool.NewBatch()
			w.SendBatch(b, Reply, text("first frame"))
			w.Send(Reply, text("second frame"))
			b.Flush()
			synctest.Wait() // 5 bytes out, the blocking turn waits
			w.Pong([]byte("p"))
			w.Send(Reply, text("third"))
			close(f.hold)
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:first frame", "text:second frame", "pong:p", "text:third")
		})
	})
	t.Run("the_first_write_error_is_sticky", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{steps: []step{{n: 3, err: errReset}}}
			w, ev := newTestWriter(f, true)
			w.Send(Reply, text("doomed"))
			synctest.Wait()
			before := f.bytes()
			if r := w.Send(Reply, text("after")); r != Closed {
				t.Fatalf("Send after failure = %v, want Closed", r)
			}
			if w.Pong(nil) || w.Ping() || w.Close(StatusNormalClosure, "", false) {
				t.Fatal("control frames accepted after a failure")
			}
			synctest.Wait()
			if got := f.bytes(); string(got) != string(before) || len(before) != 3 {
				t.Fatalf("wrote %d bytes after the failure (before: %d)", len(got)-len(before), len(before))
			}
			if c, e := ev.counts(); c != 0 || e != 1 {
				t.Fatalf("events: %d closes, %d failures; want 0, 1", c, e)
			}
			if !w.Done() {
				t.Fatal("Done is false after a failure")
			}
		})
	})
	t.Run("a_closed_socket_fails_the_writer_once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{closed: true}
			w, ev := newTestWriter(f, true)
			w.Send(Reply, text("x"))
			w.Send(Reply, text("y"))
			synctest.Wait()
			if c, e := ev.counts(); c != 0 || e != 1 {
				t.Fatalf("events: %d closes, %d failures", c, e)
			}
		})
	})
	t.Run("a_blocking_write_error_is_sticky_too", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{steps: []step{{n: 2, err: errReset}}}
			w, ev := newTestWriter(f, false)
			w.Send(Reply, text("doomed"))
			synctest.Wait()
			w.Send(Reply, text("more"))
			synctest.Wait()
			if got := f.bytes(); len(got) != 2 {
				t.Fatalf("wrote %d bytes, want the 2 before the error", len(got))
			}
			if _, e := ev.counts(); e != 1 {
				t.Fatalf("%d failures reported", e)
			}
		})
	})
	t.Run("a_pong_waits_for_one_chunk_not_for_the_backlog", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{hold: make(chan struct{})}
			w, _ := newTestWriter(f, false)
			frame := strings.Repeat("d", 1000)
			for range 100 {
				w.Send(Reply, text(frame))
			}
			synctest.Wait() // the first chunk is being written
			w.Pong([]byte("now"))
			close(f.hold)
			synctest.Wait()
			fs := parseServerFrames(t, f.bytes())
			if len(fs) != 101 {
				t.Fatalf("%d frames", len(fs))
			}
			at := -1
			for i, s := range fs {
				if s.op == OpPong {
					at = i
				}
			}
			if perChunk := chunkSize / 1004; at < 1 || at > perChunk+1 {
				t.Fatalf("pong after %d data frames; a chunk holds %d", at, perChunk)
			}
		})
	})
	t.Run("a_frame_larger_than_a_chunk_is_never_split_by_a_control_frame", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{hold: make(chan struct{})}
			w, _ := newTestWriter(f, false)
			big := strings.Repeat("B", 5*chunkSize+17)
			w.Send(Reply, text(big))
			synctest.Wait()
			w.Pong([]byte("p"))
			w.Ping()
			close(f.hold)
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:"+big, "pong:p", "ping:")
			if f.blocking < 6 {
				t.Fatalf("%d writes for a frame of 5 chunks", f.blocking)
			}
		})
	})
	t.Run("close_goes_after_the_queue_and_its_final_frames", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{hold: make(chan struct{})}
			w, ev := newTestWriter(f, true)
			w.Send(Reply, text("one"))
			w.Send(Reply, text("two"))
			w.Close(StatusServiceRestart, "shutdown", false, text("bye"))
			if r := w.Send(Reply, text("late")); r != Closed {
				t.Fatalf("Send after Close = %v", r)
			}
			close(f.hold)
			synctest.Wait()
			fs := parseServerFrames(t, f.bytes())
			wantFrames(t, fs, "text:one", "text:two", "text:bye", "close:\x03\xf4shutdown")
			if c, e := ev.counts(); c != 1 || e != 0 {
				t.Fatalf("events: %d closes, %d failures", c, e)
			}
		})
	})
	t.Run("close_now_drops_the_queue_but_finishes_the_frame_being_written", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{hold: make(chan struct{})}
			w, ev := newTestWriter(f, false)
			big := strings.Repeat("x", 2*chunkSize)
			w.Send(Reply, text(big))
			synctest.Wait() // its first chunk is in the write
			w.Send(Reply, text("queued"))
			w.Close(StatusPolicyViolation, "flood", true)
			close(f.hold)
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:"+big, "close:\x03\xf0flood")
			if c, _ := ev.counts(); c != 1 {
				t.Fatalf("%d CloseSent", c)
			}
		})
	})
	t.Run("nothing_is_written_after_the_close_frame", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{}
			w, _ := newTestWriter(f, true)
			w.Close(StatusNormalClosure, "", false)
			synctest.Wait()
			if w.Send(Reply, text("x")) != Closed || w.Pong(nil) || w.Ping() {
				t.Fatal("frames accepted after the close frame")
			}
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "close:\x03\xe8")
			if !w.Done() {
				t.Fatal("Done is false after the close frame")
			}
		})
	})
	t.Run("a_full_queue_refuses_the_unit_whole", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{hold: make(chan struct{})}
			w, _ := newTestWriter(f, false)
			w.cfg.MaxQueued, w.cfg.MaxQueuedBytes = 3, 100
			w.Send(Reply, text("in flight"))
			synctest.Wait()
			if r := w.Send(Reply, text("a"), text("b")); r != Queued {
				t.Fatalf("two frames = %v", r)
			}
			if r := w.Send(Broadcast, text("c"), text("d")); r != NotOpen {
				t.Fatalf("broadcast before Open = %v", r)
			}
			if r := w.Send(Reply, text("c"), text("d")); r != Full {
				t.Fatalf("over MaxQueued = %v", r)
			}
			if r := w.Send(Reply, text(strings.Repeat("z", 99))); r != Full {
				t.Fatalf("over MaxQueuedBytes = %v", r)
			}
			close(f.hold)
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:in flight", "text:a", "text:b")
		})
	})
	t.Run("broadcasts_wait_for_the_open_unit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{}
			w, _ := newTestWriter(f, true)
			if r := w.Send(Broadcast, text("early")); r != NotOpen {
				t.Fatalf("early broadcast = %v", r)
			}
			w.Send(Reply, text("reply"))
			w.Send(Open, text("welcome"))
			w.Send(Broadcast, text("news"))
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:reply", "text:welcome", "text:news")
		})
	})
	t.Run("only_the_latest_ping_is_answered_and_pings_are_not_doubled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{hold: make(chan struct{})}
			w, _ := newTestWriter(f, false)
			w.Send(Reply, text("busy"))
			synctest.Wait()
			w.Pong([]byte("1"))
			w.Pong([]byte("2"))
			w.Ping()
			w.Ping()
			close(f.hold)
			synctest.Wait()
			wantFrames(t, parseServerFrames(t, f.bytes()), "text:busy", "pong:2", "ping:")
		})
	})
	t.Run("compressed_frames_carry_rsv1", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeTransport{}
			w, _ := newTestWriter(f, true)
			w.Send(Reply, Frame{Op: OpText, Deflated: true, Payload: Deflate([]byte("squeeze me"))})
			synctest.Wait()
			fs := parseServerFrames(t, f.bytes())
			if len(fs) != 1 || !fs[0].rsv1 {
				t.Fatalf("frames %+v", fs)
			}
			got, err := inflate(nil, []byte(fs[0].payload), 100)
			if err != nil || string(got) != "squeeze me" {
				t.Fatalf("inflate = %q, %v", got, err)
			}
		})
	})
}

// The pool serves writers in the order they asked, and one that keeps
// receiving frames goes to the back of the line between batches.
func TestPoolTakesTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := NewPool(1)
		cfg := &WriterConfig{MaxQueued: 1000, MaxQueuedBytes: 1 << 20, WriteTimeout: time.Second, Pool: pool}
		var order []string
		rec := &orderTransport{log: &order}
		a, b := new(Writer), new(Writer)
		a.Init(rec.named("a"), cfg, newEvents())
		b.Init(rec.named("b"), cfg, newEvents())
		batch := pool.NewBatch()
		a.SendBatch(batch, Reply, text("a1"))
		b.SendBatch(batch, Reply, text("b1"))
		batch.Flush()
		synctest.Wait()
		if strings.Join(order, ",") != "a,b" {
			t.Fatalf("order %v", order)
		}
	})
}

type orderTransport struct {
	log  *[]string
	name string
}

func (o *orderTransport) named(n string) *orderTransport { return &orderTransport{log: o.log, name: n} }
func (o *orderTransport) TryWrite(p []byte) (int, error) {
	*o.log = append(*o.log, o.name)
	return len(p), nil
}
func (o *orderTransport) Write(p []byte) (int, error)      { return o.TryWrite(p) }
func (o *orderTransport) SetWriteDeadline(time.Time) error { return nil }
