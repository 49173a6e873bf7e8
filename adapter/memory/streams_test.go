package memory_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/internal/brokertest"
)

func TestStreams(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, n int) []adapter.Broker {
		bus := memory.NewBus()
		t.Cleanup(bus.Close)
		out := make([]adapter.Broker, n)
		for i := range out {
			b := bus.Broker()
			t.Cleanup(func() { b.Close() })
			out[i] = b
		}
		return out
	})
}

func TestStreamsMemory(t *testing.T) {
	ctx := context.Background()
	stream := adapter.PublishOptions{Stream: brokertest.Stream}

	t.Run("a_new_bus_starts_every_topic_at_a_new_epoch", func(t *testing.T) {
		first := memory.New()
		defer first.Close()
		before := brokertest.Publish(t, first, "room:a", "x", stream)
		first.Close() // the process restarts
		second := memory.New()
		defer second.Close()
		after := brokertest.Publish(t, second, "room:a", "y", stream)
		if after.Offset != 1 || after.Epoch == before.Epoch {
			t.Fatalf("after a restart at %+v, before at %+v: want offset 1 in a new epoch", after, before)
		}
		res := brokertest.History(t, second, "room:a", adapter.HistoryQuery{Since: before, Stream: brokertest.Stream})
		brokertest.Incomplete(t, res, after)
	})

	t.Run("a_position_past_its_meta_ttl_starts_a_new_epoch", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := memory.New()
			defer b.Close()
			s := adapter.StreamOptions{Size: 10, TTL: time.Second}
			old := brokertest.Publish(t, b, "room:m", "x", adapter.PublishOptions{Stream: s})
			time.Sleep(9 * time.Second)
			if p := brokertest.Publish(t, b, "room:m", "y", adapter.PublishOptions{Stream: s}); p.Epoch != old.Epoch || p.Offset != 2 {
				t.Fatalf("within MetaTTL at %+v, want offset 2 of %q", p, old.Epoch)
			}
			time.Sleep(10*time.Second + time.Millisecond)
			p := brokertest.Publish(t, b, "room:m", "z", adapter.PublishOptions{Stream: s})
			if p.Epoch == old.Epoch || p.Offset != 1 {
				t.Fatalf("after MetaTTL at %+v, want offset 1 of a new epoch", p)
			}
		})
	})

	t.Run("a_closed_broker_refuses_streams", func(t *testing.T) {
		b := memory.New()
		b.Close()
		if _, err := b.Publish(ctx, "room:a", nil, stream); !errors.Is(err, adapter.ErrClosed) {
			t.Fatalf("Publish: %v", err)
		}
		if _, err := b.History(ctx, "room:a", adapter.HistoryQuery{}); !errors.Is(err, adapter.ErrClosed) {
			t.Fatalf("History: %v", err)
		}
		if err := b.Erase(ctx, "room:a"); !errors.Is(err, adapter.ErrClosed) {
			t.Fatalf("Erase: %v", err)
		}
	})

	t.Run("a_cancelled_publish_delivers_and_stores_nothing", func(t *testing.T) {
		bus := memory.NewBus()
		defer bus.Close()
		b := bus.Broker()
		r := brokertest.Attach(t, b, "room:c")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Publish(cctx, "room:c", []byte("no"), stream); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		brokertest.Publish(t, b, "room:c", "marker", adapter.PublishOptions{})
		if got := r.Until(t, "marker"); len(got) != 0 {
			t.Fatalf("delivered %d", len(got))
		}
		if u := bus.Usage(); u.Streams != 0 {
			t.Fatalf("usage %+v after a cancelled publish", u)
		}
	})
}

// One-shot topics (a user room that gets one notification, then nobody
// comes back) must not accumulate: 100,000 of them return the bus, and the
// heap, to where they started once their TTLs have passed, and the sweeper
// stops.
func TestStreamsMemoryIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := memory.NewBus()
		defer bus.Close()
		b := bus.Broker()
		_ = b.Attach(func(adapter.Message) {})
		baseline := heapInUse()
		opts := adapter.PublishOptions{
			Stream:         adapter.StreamOptions{Size: 10, TTL: 100 * time.Millisecond},
			IdempotencyTTL: time.Second,
		}
		const topics = 100_000
		payload := make([]byte, 64)
		for i := range topics {
			opts.IdempotencyKey = fmt.Sprint(i)
			if _, err := b.Publish(context.Background(), fmt.Sprintf("user:%d", i), payload, opts); err != nil {
				t.Fatal(err)
			}
		}
		peakUsage, peak := bus.Usage(), heapInUse()
		if peakUsage != (memory.Usage{Streams: topics, Entries: topics, Keys: topics}) {
			t.Fatalf("usage after publishing %+v", peakUsage)
		}
		if peak < baseline+10<<20 {
			t.Fatalf("heap %d KiB at the peak, %d KiB at the start: the measure cannot see the topics", peak>>10, baseline>>10)
		}
		// MetaTTL is 10×TTL = 1s; two sweeps later everything is gone.
		time.Sleep(3 * time.Second)
		synctest.Wait() // the sweeper has run and stopped
		if u := bus.Usage(); u != (memory.Usage{}) {
			t.Fatalf("usage after the TTLs %+v", u)
		}
		after := heapInUse()
		t.Logf("heap: %d KiB at the start, %d KiB with %d topics, %d KiB after their TTL", baseline>>10, peak>>10, topics, after>>10)
		if after > baseline+1<<20 {
			t.Fatalf("heap %d KiB after the TTLs, %d KiB at the start", after>>10, baseline>>10)
		}
	})
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts adapter.PublishOptions
	}{
		{"plain", adapter.PublishOptions{}},
		{"stream", adapter.PublishOptions{Stream: adapter.StreamOptions{Size: 100, TTL: time.Minute}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := memory.New()
			defer m.Close()
			_ = m.Attach(func(adapter.Message) {})
			_ = m.Subscribe(context.Background(), "room:bench")
			payload := make([]byte, 200)
			ctx := context.Background()
			for b.Loop() {
				if _, err := m.Publish(ctx, "room:bench", payload, bc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A client that saw offset 1 comes back and asks for what it missed: it
// gets every message after its position, or — had any been lost — none.
func ExampleBroker_History() {
	b := memory.New()
	defer b.Close()
	_ = b.Attach(func(adapter.Message) {})
	ctx := context.Background()
	opts := adapter.PublishOptions{Stream: adapter.StreamOptions{Size: 100, TTL: time.Minute}}
	seen, _ := b.Publish(ctx, "room:lobby", []byte("one"), opts)
	_, _ = b.Publish(ctx, "room:lobby", []byte("two"), opts)
	_, _ = b.Publish(ctx, "room:lobby", []byte("three"), opts)

	res, err := b.History(ctx, "room:lobby", adapter.HistoryQuery{Since: seen, Limit: 300, Stream: opts.Stream})
	if err != nil || !res.Complete {
		fmt.Println("cannot recover: reload from the database")
		return
	}
	for _, e := range res.Entries {
		fmt.Println(e.Offset, string(e.Payload))
	}
	// Output:
	// 2 two
	// 3 three
}

// A retry with the same idempotency key is not delivered again.
func ExampleBroker_Publish_idempotent() {
	b := memory.New()
	defer b.Close()
	_ = b.Attach(func(m adapter.Message) { fmt.Printf("delivered %s\n", m.Payload) })
	_ = b.Subscribe(context.Background(), "user:42")
	opts := adapter.PublishOptions{IdempotencyKey: "order-7-shipped"}
	for range 2 {
		_, err := b.Publish(context.Background(), "user:42", []byte("shipped"), opts)
		fmt.Println(err)
	}
	// Output:
	// delivered shipped
	// <nil>
	// adapter: duplicate publish
}
