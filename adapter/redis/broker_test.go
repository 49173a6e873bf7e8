package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/redistest"
)

func TestPublishSubscribe(t *testing.T) {
	srv := redistest.Start(t)
	opts := Options{Addrs: []string{srv.Addr()}}

	tests := []struct {
		name string
		run  func(t *testing.T, a, b *Broker, sa, sb *sink)
	}{
		{"message_reaches_every_subscribed_node_including_the_sender", func(t *testing.T, a, b *Broker, sa, sb *sink) {
			subscribe(t, a, "room:lobby")
			subscribe(t, b, "room:lobby")
			publish(t, a, "room:lobby", []byte("hello"))
			sa.expect(t, "room:lobby", []byte("hello"))
			sb.expect(t, "room:lobby", []byte("hello"))
		}},
		{"node_without_the_topic_receives_nothing", func(t *testing.T, a, b *Broker, sa, sb *sink) {
			subscribe(t, a, "room:x")
			subscribe(t, b, "room:y")
			publish(t, a, "room:x", []byte("only a"))
			publish(t, a, "room:y", []byte("marker"))
			// b's connection delivers in order: once the marker is
			// in, anything for room:x would have been too.
			if other := sb.waitTopic(t, "room:y"); len(other) > 0 {
				t.Fatalf("b received %v", other)
			}
			sa.expect(t, "room:x", []byte("only a"))
		}},
		{"payload_is_delivered_byte_for_byte", func(t *testing.T, a, b *Broker, sa, sb *sink) {
			payload := []byte{0, 1, 2, 0xff, '\r', '\n', 0x80}
			subscribe(t, b, "room:bin")
			publish(t, a, "room:bin", payload)
			sb.expect(t, "room:bin", payload)
		}},
		{"messages_of_one_topic_keep_their_order", func(t *testing.T, a, b *Broker, sa, sb *sink) {
			subscribe(t, b, "room:seq")
			for i := range 200 {
				publish(t, a, "room:seq", fmt.Appendf(nil, "%d", i))
			}
			for i := range 200 {
				sb.expect(t, "room:seq", fmt.Appendf(nil, "%d", i))
			}
		}},
		{"resubscribing_a_topic_is_a_no_op", func(t *testing.T, a, b *Broker, sa, sb *sink) {
			subscribe(t, b, "room:twice", "room:twice")
			publish(t, a, "room:twice", []byte("once"))
			sb.expect(t, "room:twice", []byte("once"))
			publish(t, a, "room:twice", []byte("marker"))
			sb.expect(t, "room:twice", []byte("marker"))
		}},
		{"a_panicking_handler_does_not_stop_delivery", func(t *testing.T, a, b *Broker, sa, sb *sink) {
			c, err := New(Options{Addrs: opts.Addrs, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := make(chan string, 2)
			c.Attach(func(m adapter.Message) {
				p := m.Payload
				if string(p) == "boom" {
					panic("handler bug")
				}
				got <- string(p)
			})
			subscribe(t, c, "room:p")
			publish(t, a, "room:p", []byte("boom"))
			publish(t, a, "room:p", []byte("after"))
			select {
			case p := <-got:
				if p != "after" {
					t.Fatalf("got %q", p)
				}
			case <-time.After(waitFor):
				t.Fatal("delivery stopped after a handler panic")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, sa := node(t, opts)
			b, sb := node(t, opts)
			tt.run(t, a, b, sa, sb)
		})
	}
}

func TestSubscriptionsFollowTheHub(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv.Addr())
	opts := Options{Addrs: []string{srv.Addr()}, Prefix: "app:"}
	rooms := func() []string { return channels(t, rc, false, "app:room:*") }

	t.Run("a_topic_is_subscribed_only_once_Subscribe_was_called", func(t *testing.T) {
		b, _ := node(t, opts)
		if got := rooms(); len(got) != 0 {
			t.Fatalf("channels before Subscribe: %v", got)
		}
		subscribe(t, b, "room:a", "room:b")
		if got, want := rooms(), []string{"app:room:a", "app:room:b"}; !slices.Equal(got, want) {
			t.Fatalf("channels %v, want %v", got, want)
		}
		b.Close()
	})
	t.Run("Unsubscribe_removes_the_channel_from_redis", func(t *testing.T) {
		b, s := node(t, opts)
		subscribe(t, b, "room:a", "room:b")
		if err := b.Unsubscribe(context.Background(), "room:a"); err != nil {
			t.Fatal(err)
		}
		if got, want := rooms(), []string{"app:room:b"}; !slices.Equal(got, want) {
			t.Fatalf("channels %v, want %v", got, want)
		}
		publish(t, b, "room:a", []byte("gone"))
		publish(t, b, "room:b", []byte("marker"))
		if other := s.waitTopic(t, "room:b"); len(other) > 0 {
			t.Fatalf("delivered after Unsubscribe: %v", other)
		}
		if err := b.Unsubscribe(context.Background(), "room:a"); err != nil {
			t.Fatalf("second Unsubscribe: %v", err)
		}
		b.Close()
	})
	t.Run("Close_drops_every_channel", func(t *testing.T) {
		b, _ := node(t, opts)
		subscribe(t, b, "room:a")
		b.Close()
		eventually(t, "no channels after Close", func() error {
			if got := channels(t, rc, false, "app:*"); len(got) != 0 {
				return fmt.Errorf("channels %v", got)
			}
			return nil
		})
	})
	t.Run("the_probe_channel_is_the_only_other_subscription", func(t *testing.T) {
		b, _ := node(t, opts)
		got := channels(t, rc, false, "app:*")
		if len(got) != 1 || !strings.HasPrefix(got[0], "app:probe:"+b.nodeID) {
			t.Fatalf("channels %v", got)
		}
		b.Close()
	})
}

func TestBrokerContract(t *testing.T) {
	srv := redistest.Start(t)
	opts := Options{Addrs: []string{srv.Addr()}}
	ctx := context.Background()
	t.Run("Subscribe_before_Attach_fails", func(t *testing.T) {
		b, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Subscribe(ctx, "room:a"); !errors.Is(err, adapter.ErrNotAttached) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("second_Attach_fails", func(t *testing.T) {
		b, _ := node(t, opts)
		if err := b.Attach(func(adapter.Message) {}); !errors.Is(err, adapter.ErrAttached) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("everything_fails_with_ErrClosed_after_Close", func(t *testing.T) {
		b, _ := node(t, opts)
		if err := healthy(b); err != nil {
			t.Fatalf("Health before Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		for name, err := range map[string]error{
			"Publish":     second(b.Publish(ctx, "room:a", nil, adapter.PublishOptions{})),
			"Subscribe":   b.Subscribe(ctx, "room:a"),
			"Unsubscribe": b.Unsubscribe(ctx, "room:a"),
			"Health":      b.Health(ctx),
			"Attach":      b.Attach(func(adapter.Message) {}),
		} {
			if !errors.Is(err, adapter.ErrClosed) {
				t.Errorf("%s after Close: %v", name, err)
			}
		}
	})
	t.Run("Close_leaves_no_goroutines", func(t *testing.T) {
		check := noGoroutineLeak(t)
		b, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		b.Attach(func(adapter.Message) {})
		subscribe(t, b, "room:a")
		publish(t, b, "room:a", []byte("x"))
		b.Close()
		check()
	})
}

func TestOnePublishPerBroadcast(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv.Addr())
	// A long probe interval keeps probes out of the count.
	opts := Options{Addrs: []string{srv.Addr()}, ProbeInterval: time.Hour}
	nodes := make([]*Broker, 3)
	sinks := make([]*sink, 3)
	for i := range nodes {
		nodes[i], sinks[i] = node(t, opts)
		subscribe(t, nodes[i], "room:big")
	}
	const n = 50
	before := commandCalls(t, rc, "publish")
	for i := range n {
		publish(t, nodes[i%3], "room:big", []byte("x"))
	}
	if got := commandCalls(t, rc, "publish") - before; got != n {
		t.Fatalf("%d PUBLISH commands for %d broadcasts to 3 nodes", got, n)
	}
	for _, s := range sinks {
		for range n {
			s.expect(t, "room:big", []byte("x"))
		}
	}
	if st := nodes[0].Stats(); st.Published == 0 || st.Delivered != n {
		t.Fatalf("stats %+v", st)
	}
}

func TestPrefixIsolation(t *testing.T) {
	srv := redistest.Start(t)
	a, sa := node(t, Options{Addrs: []string{srv.Addr()}, Prefix: "app1:"})
	b, sb := node(t, Options{Addrs: []string{srv.Addr()}, Prefix: "app2:"})
	subscribe(t, a, "room:shared", "room:end")
	subscribe(t, b, "room:shared", "room:end")
	publish(t, a, "room:shared", []byte("for app1"))
	publish(t, b, "room:shared", []byte("for app2"))
	publish(t, a, "room:end", nil)
	publish(t, b, "room:end", nil)
	sa.expect(t, "room:shared", []byte("for app1"))
	sb.expect(t, "room:shared", []byte("for app2"))
	if other := sa.waitTopic(t, "room:end"); len(other) > 0 {
		t.Fatalf("app1 saw %v", other)
	}
	if other := sb.waitTopic(t, "room:end"); len(other) > 0 {
		t.Fatalf("app2 saw %v", other)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no_address", Options{}, "Addrs is empty"},
		{"empty_address", Options{Addrs: []string{""}}, "empty address"},
		{"short_hmac_key", Options{Addrs: []string{"127.0.0.1:1"}, HMACKey: []byte("short")}, "HMACKey"},
		{"negative_timeout", Options{Addrs: []string{"127.0.0.1:1"}, PublishTimeout: -1}, "PublishTimeout"},
		{"negative_buffer", Options{Addrs: []string{"127.0.0.1:1"}, DeliveryBuffer: -1}, "DeliveryBuffer"},
		{"tiny_probe_interval", Options{Addrs: []string{"127.0.0.1:1"}, ProbeInterval: time.Millisecond}, "ProbeInterval"},
		{"hash_tag_in_cluster_prefix", Options{Addrs: []string{"a:1", "b:1"}, Prefix: "{app}:"}, "brace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("err %v, want it to mention %q", err, tt.want)
			}
		})
	}
	t.Run("unreachable_redis_fails_New_promptly", func(t *testing.T) {
		srv := redistest.Start(t)
		addr := srv.Addr()
		srv.Stop()
		start := time.Now()
		if _, err := New(Options{Addrs: []string{addr}, PublishTimeout: 200 * time.Millisecond}); err == nil {
			t.Fatal("New succeeded without Redis")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("New took %s", d)
		}
	})
	t.Run("password_is_sent", func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithPassword("s3cret"))
		if _, err := New(Options{Addrs: []string{srv.Addr()}, PublishTimeout: 500 * time.Millisecond}); err == nil {
			t.Fatal("New succeeded without the password")
		}
		a, sa := node(t, Options{Addrs: []string{srv.Addr()}, Password: "s3cret"})
		subscribe(t, a, "room:a")
		publish(t, a, "room:a", []byte("ok"))
		sa.expect(t, "room:a", []byte("ok"))
	})
}
