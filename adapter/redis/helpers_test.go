package redis

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
)

// waitFor bounds every wait in these tests: generous for a loaded CI
// machine, and never reached when the broker works.
const waitFor = 10 * time.Second

type message struct {
	topic   string
	payload []byte
	pos     adapter.Position
}

// sink is a handler that records messages on a channel.
type sink struct{ ch chan message }

func newSink() *sink { return &sink{ch: make(chan message, 1<<16)} }

func (s *sink) handle(m adapter.Message) {
	s.ch <- message{m.Topic, m.Payload, m.Pos}
}

// expect waits for the next message and checks it.
func (s *sink) expect(t *testing.T, topic string, payload []byte) {
	t.Helper()
	select {
	case m := <-s.ch:
		if m.topic != topic || !bytes.Equal(m.payload, payload) {
			t.Fatalf("got %s %q, want %s %q", m.topic, m.payload, topic, payload)
		}
	case <-time.After(waitFor):
		t.Fatalf("no message for %s within %s", topic, waitFor)
	}
}

// waitTopic drains messages until one for topic arrives and returns the
// others it saw on the way.
func (s *sink) waitTopic(t *testing.T, topic string) (other []message) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-s.ch:
			if m.topic == topic {
				return other
			}
			other = append(other, m)
		case <-deadline:
			t.Fatalf("no message for %s within %s", topic, waitFor)
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// node starts a broker with a sink attached; it is closed at cleanup.
func node(t *testing.T, o Options) (*Broker, *sink) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	b, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	s := newSink()
	if err := b.Attach(s.handle); err != nil {
		t.Fatal(err)
	}
	return b, s
}

func subscribe(t *testing.T, b *Broker, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		if err := b.Subscribe(context.Background(), topic); err != nil {
			t.Fatalf("Subscribe(%s): %v", topic, err)
		}
	}
}

func publish(t *testing.T, b *Broker, topic string, payload []byte) {
	t.Helper()
	if _, err := b.Publish(context.Background(), topic, payload, adapter.PublishOptions{}); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

// rawClient is a plain rueidis client for inspecting Redis and for
// publishing behind the broker's back.
func rawClient(t *testing.T, addrs ...string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: addrs, DisableCache: true, ForceSingleClient: len(addrs) == 1,
	})
	if err != nil {
		t.Fatalf("rueidis client: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// channels returns the sorted PUBSUB CHANNELS (or SHARDCHANNELS) matching
// pattern on the node c talks to.
func channels(t *testing.T, c rueidis.Client, sharded bool, pattern string) []string {
	t.Helper()
	cmd := c.B().PubsubChannels().Pattern(pattern).Build()
	if sharded {
		cmd = c.B().PubsubShardchannels().Pattern(pattern).Build()
	}
	got, err := c.Do(context.Background(), cmd).AsStrSlice()
	if err != nil {
		t.Fatalf("PUBSUB: %v", err)
	}
	slices.Sort(got)
	return got
}

// commandCalls returns the calls count of cmd from INFO commandstats.
func commandCalls(t *testing.T, c rueidis.Client, cmd string) int {
	t.Helper()
	info, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	n, err := redistest.CommandCalls(info, cmd)
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	return n
}

// eventually polls cond every 10ms until it returns nil or waitFor passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	testutil.EventuallyNil(t, waitFor, what, cond)
}

// noGoroutineLeak returns a check that the goroutine count has come back to
// what it was, allowing rueidis' own timers a moment to wind down.
func noGoroutineLeak(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		eventually(t, "goroutines back to baseline", func() error {
			if n := runtime.NumGoroutine(); n > before {
				return fmt.Errorf("%d goroutines, %d before", n, before)
			}
			return nil
		})
	}
}

func healthy(b *Broker) error { return b.Health(context.Background()) }

// second returns the error of a call that also returns a value.
func second[T any](_ T, err error) error { return err }
