package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
)

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) handle(m adapter.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m.Topic+"="+string(m.Payload))
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func TestBroker(t *testing.T) {
	ctx := context.Background()
	t.Run("delivers_only_to_subscribed_nodes_including_the_publisher", func(t *testing.T) {
		bus := memory.NewBus()
		a, b, c := bus.Broker(), bus.Broker(), bus.Broker()
		var ra, rb, rc recorder
		for _, x := range []struct {
			br *memory.Broker
			r  *recorder
		}{{a, &ra}, {b, &rb}, {c, &rc}} {
			if err := x.br.Attach(x.r.handle); err != nil {
				t.Fatal(err)
			}
		}
		_ = a.Subscribe(ctx, "room:x")
		_ = b.Subscribe(ctx, "room:x")
		_ = b.Subscribe(ctx, "room:x") // idempotent
		if _, err := a.Publish(ctx, "room:x", []byte("hi"), adapter.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := ra.messages(); len(got) != 1 || got[0] != "room:x=hi" {
			t.Fatalf("a got %q", got)
		}
		if got := rb.messages(); len(got) != 1 {
			t.Fatalf("b got %q, want one message", got)
		}
		if got := rc.messages(); len(got) != 0 {
			t.Fatalf("unsubscribed c got %q", got)
		}
		_ = b.Unsubscribe(ctx, "room:x")
		_, _ = a.Publish(ctx, "room:x", []byte("again"), adapter.PublishOptions{})
		if got := rb.messages(); len(got) != 1 {
			t.Fatalf("b got %q after unsubscribing", got)
		}
	})
	t.Run("attach_twice_is_an_error", func(t *testing.T) {
		m := memory.New()
		_ = m.Attach(func(adapter.Message) {})
		if err := m.Attach(func(adapter.Message) {}); !errors.Is(err, adapter.ErrAttached) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("subscribe_before_attach_is_an_error", func(t *testing.T) {
		if err := memory.New().Subscribe(ctx, "t"); !errors.Is(err, adapter.ErrNotAttached) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("closed_broker_refuses_and_reports_unhealthy", func(t *testing.T) {
		m := memory.New()
		_ = m.Attach(func(adapter.Message) {})
		_ = m.Subscribe(ctx, "t")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Publish(ctx, "t", nil, adapter.PublishOptions{}); !errors.Is(err, adapter.ErrClosed) {
			t.Fatalf("publish err = %v", err)
		}
		if err := m.Health(ctx); !errors.Is(err, adapter.ErrClosed) {
			t.Fatalf("health err = %v", err)
		}
		if m.Topics() != 0 {
			t.Fatal("topics left after close")
		}
	})
	t.Run("handler_may_unsubscribe_during_delivery", func(t *testing.T) {
		m := memory.New()
		_ = m.Attach(func(msg adapter.Message) { _ = m.Unsubscribe(ctx, msg.Topic) })
		_ = m.Subscribe(ctx, "t")
		if _, err := m.Publish(ctx, "t", nil, adapter.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if m.Topics() != 0 {
			t.Fatal("unsubscribe from the handler did not take")
		}
	})
	t.Run("concurrent_use_is_safe", func(t *testing.T) {
		bus := memory.NewBus()
		var wg sync.WaitGroup
		for n := range 4 {
			br := bus.Broker()
			_ = br.Attach(func(adapter.Message) {})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 500 {
					topic := fmt.Sprintf("room:%d", i%7)
					_ = br.Subscribe(ctx, topic)
					_, _ = br.Publish(ctx, topic, []byte{byte(n)}, adapter.PublishOptions{})
					_ = br.Unsubscribe(ctx, topic)
				}
			}()
		}
		wg.Wait()
	})
}

func ExampleNewBus() {
	bus := memory.NewBus()
	nodeA, nodeB := bus.Broker(), bus.Broker()
	_ = nodeA.Attach(func(adapter.Message) {})
	_ = nodeB.Attach(func(m adapter.Message) { fmt.Printf("node B got %s on %s\n", m.Payload, m.Topic) })
	_ = nodeB.Subscribe(context.Background(), "room:lobby")
	_, _ = nodeA.Publish(context.Background(), "room:lobby", []byte("hello"), adapter.PublishOptions{})
	// Output: node B got hello on room:lobby
}
