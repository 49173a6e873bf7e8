// Package brokertest is the specification that every adapter.Broker with
// streams meets: offsets, delivery order, all-or-nothing history, erasure
// and idempotent publish. The memory and Redis brokers' tests run it
// against their own brokers; what only one store can do (a restart, a
// FLUSHALL, memory bounds) is tested beside it.
//
//	brokertest.Run(t, func(t *testing.T, n int) []adapter.Broker { ... })
//
// Only tests import it.
package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
)

// WaitFor bounds every wait of the suite: generous for a loaded machine,
// never reached when the broker works.
const WaitFor = 10 * time.Second

// Nodes returns n brokers that share one store (one bus, one Redis), not
// yet attached, closed when the test ends.
type Nodes func(t *testing.T, n int) []adapter.Broker

// Run runs the whole specification, one subtest per behaviour.
func Run(t *testing.T, nodes Nodes) {
	t.Run("Positions", func(t *testing.T) { runPositions(t, nodes) })
	t.Run("History", func(t *testing.T) { runHistory(t, nodes) })
	t.Run("Idempotency", func(t *testing.T) { runIdempotency(t, nodes) })
	t.Run("InvalidInput", func(t *testing.T) { runInvalid(t, nodes) })
}

// Stream is the stream options the suite publishes with unless a case
// needs others: long enough TTLs that nothing expires during a test.
var Stream = adapter.StreamOptions{Size: 100, TTL: time.Hour}

// Recorder is a handler that records every message on a channel.
type Recorder struct{ ch chan adapter.Message }

// NewRecorder returns a recorder with room for 1<<16 messages.
func NewRecorder() *Recorder { return &Recorder{ch: make(chan adapter.Message, 1<<16)} }

// Handle is the adapter.Handler.
func (r *Recorder) Handle(m adapter.Message) { r.ch <- m }

// Next returns the next message, failing t after WaitFor.
func (r *Recorder) Next(t testing.TB) adapter.Message {
	t.Helper()
	select {
	case m := <-r.ch:
		return m
	case <-time.After(WaitFor):
		t.Fatalf("no message within %s", WaitFor)
		return adapter.Message{}
	}
}

// Until returns the messages received before every one of markers has
// been (the markers are consumed, not returned). Messages of one topic
// arrive in order, those of different topics need not (a cluster carries
// them on different connections): a marker vouches for its own topic only.
func (r *Recorder) Until(t testing.TB, markers ...string) []adapter.Message {
	t.Helper()
	left := make(map[string]bool, len(markers))
	for _, m := range markers {
		left[m] = true
	}
	var got []adapter.Message
	for range 1 << 16 {
		m := r.Next(t)
		if left[string(m.Payload)] {
			delete(left, string(m.Payload))
			if len(left) == 0 {
				return got
			}
			continue
		}
		got = append(got, m)
	}
	t.Fatalf("markers %v not received", left)
	return nil
}

// Attach attaches a recorder to b and subscribes it to topics.
func Attach(t testing.TB, b adapter.Broker, topics ...string) *Recorder {
	t.Helper()
	r := NewRecorder()
	if err := b.Attach(r.Handle); err != nil {
		t.Fatal(err)
	}
	for _, topic := range topics {
		if err := b.Subscribe(context.Background(), topic); err != nil {
			t.Fatalf("Subscribe(%s): %v", topic, err)
		}
	}
	return r
}

// Publish publishes payload with opts, failing t on an error.
func Publish(t testing.TB, b adapter.Broker, topic, payload string, opts adapter.PublishOptions) adapter.Position {
	t.Helper()
	pos, err := b.Publish(context.Background(), topic, []byte(payload), opts)
	if err != nil {
		t.Fatalf("Publish(%s, %q): %v", topic, payload, err)
	}
	return pos
}

// History reads topic's history, failing t on an error.
func History(t testing.TB, b adapter.Broker, topic string, q adapter.HistoryQuery) adapter.HistoryResult {
	t.Helper()
	res, err := b.History(context.Background(), topic, q)
	if err != nil {
		t.Fatalf("History(%s, %+v): %v", topic, q, err)
	}
	return res
}

// Incomplete checks that res is an all-or-nothing refusal with top.
func Incomplete(t testing.TB, res adapter.HistoryResult, top adapter.Position) {
	t.Helper()
	if res.Complete || res.Entries != nil {
		t.Fatalf("history complete=%v with %d entries, want nothing", res.Complete, len(res.Entries))
	}
	if res.Top != top {
		t.Fatalf("top %+v, want %+v", res.Top, top)
	}
}

// Complete checks that res holds exactly the entries with offsets from,
// from+1, … whose payloads are want.
func Complete(t testing.TB, res adapter.HistoryResult, from uint64, want ...string) {
	t.Helper()
	if !res.Complete {
		t.Fatalf("history not complete (top %+v), want %d entries from %d", res.Top, len(want), from)
	}
	if len(res.Entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(res.Entries), len(want))
	}
	for i, e := range res.Entries {
		if e.Offset != from+uint64(i) || !bytes.Equal(e.Payload, []byte(want[i])) {
			t.Fatalf("entry %d is %d %q, want %d %q", i, e.Offset, e.Payload, from+uint64(i), want[i])
		}
	}
}

// Eventually polls cond every 5ms until it returns nil, failing t with its
// last error after WaitFor.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(WaitFor)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, WaitFor, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval; the deadline bounds it
	}
}

func withStream(s adapter.StreamOptions) adapter.PublishOptions {
	return adapter.PublishOptions{Stream: s}
}

func runPositions(t *testing.T, nodes Nodes) {
	t.Run("offsets_start_at_1_per_topic_and_epochs_differ_between_topics", func(t *testing.T) {
		b := nodes(t, 1)[0]
		Attach(t, b)
		var a, c []adapter.Position
		for i := range 3 {
			a = append(a, Publish(t, b, "room:a", fmt.Sprint(i), withStream(Stream)))
		}
		for i := range 2 {
			c = append(c, Publish(t, b, "room:c", fmt.Sprint(i), withStream(Stream)))
		}
		for i, p := range a {
			if p.Offset != uint64(i+1) || p.Epoch != a[0].Epoch || p.Epoch == "" {
				t.Fatalf("room:a positions %+v", a)
			}
		}
		if c[0].Offset != 1 || c[1].Offset != 2 || c[0].Epoch == a[0].Epoch {
			t.Fatalf("room:c positions %+v, room:a epoch %q", c, a[0].Epoch)
		}
	})
	t.Run("delivered_message_carries_its_position_and_a_plain_publish_none", func(t *testing.T) {
		b := nodes(t, 1)[0]
		r := Attach(t, b, "room:p")
		pos := Publish(t, b, "room:p", "kept", withStream(Stream))
		Publish(t, b, "room:p", "plain", adapter.PublishOptions{})
		if m := r.Next(t); m.Topic != "room:p" || string(m.Payload) != "kept" || m.Pos != pos {
			t.Fatalf("got %s %q at %+v, want kept at %+v", m.Topic, m.Payload, m.Pos, pos)
		}
		if m := r.Next(t); string(m.Payload) != "plain" || !m.Pos.IsZero() {
			t.Fatalf("got %q at %+v, want plain without a position", m.Payload, m.Pos)
		}
	})
	t.Run("concurrent_publishers_on_three_nodes_get_strictly_increasing_offsets_delivered_in_order", func(t *testing.T) {
		concurrentPublishers(t, nodes(t, 3))
	})
}

// concurrentPublishers publishes from 4 goroutines on each node and checks
// that the offsets are 1..N, each once, and that every node receives them
// in offset order, each with the payload it was returned for.
func concurrentPublishers(t *testing.T, bs []adapter.Broker) {
	const perWorker, workers = 100, 4
	const topic = "room:concurrent"
	recs := make([]*Recorder, len(bs))
	for i, b := range bs {
		recs[i] = Attach(t, b, topic)
	}
	type result struct {
		payload string
		pos     adapter.Position
		err     error
	}
	results := make(chan result, len(bs)*workers*perWorker)
	for n, b := range bs {
		for w := range workers {
			go func() {
				for i := range perWorker {
					p := fmt.Sprintf("%d-%d-%d", n, w, i)
					pos, err := b.Publish(context.Background(), topic, []byte(p), withStream(Stream))
					results <- result{p, pos, err}
				}
			}()
		}
	}
	total := len(bs) * workers * perWorker
	byOffset := make(map[uint64]string, total)
	var epoch string
	for range total {
		var r result
		select {
		case r = <-results:
		case <-time.After(WaitFor):
			t.Fatal("publishers did not finish")
		}
		if r.err != nil {
			t.Fatalf("Publish: %v", r.err)
		}
		if epoch == "" {
			epoch = r.pos.Epoch
		}
		if _, dup := byOffset[r.pos.Offset]; dup || r.pos.Epoch != epoch || r.pos.Offset < 1 || r.pos.Offset > uint64(total) {
			t.Fatalf("position %+v for %s: duplicate, out of range or another epoch", r.pos, r.payload)
		}
		byOffset[r.pos.Offset] = r.payload
	}
	for i, rec := range recs {
		for want := uint64(1); want <= uint64(total); want++ {
			m := rec.Next(t)
			if m.Pos.Offset != want || string(m.Payload) != byOffset[want] {
				t.Fatalf("node %d received %q at %+v, want %q at offset %d", i, m.Payload, m.Pos, byOffset[want], want)
			}
		}
	}
}

func runHistory(t *testing.T, nodes Nodes) {
	// five publishes "m1".."m5" on a fresh topic, with stream options s.
	five := func(t *testing.T, b adapter.Broker, topic string, s adapter.StreamOptions) adapter.Position {
		var top adapter.Position
		for i := 1; i <= 5; i++ {
			top = Publish(t, b, topic, fmt.Sprintf("m%d", i), withStream(s))
		}
		return top
	}
	q := func(since adapter.Position) adapter.HistoryQuery {
		return adapter.HistoryQuery{Since: since, Stream: Stream}
	}
	at := func(top adapter.Position, offset uint64) adapter.Position {
		return adapter.Position{Offset: offset, Epoch: top.Epoch}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, a, b adapter.Broker)
	}{
		{"every_missed_entry_in_order_read_from_another_node", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			Complete(t, History(t, b, "room:h", q(at(top, 2))), 3, "m3", "m4", "m5")
			Complete(t, History(t, b, "room:h", q(at(top, 0))), 1, "m1", "m2", "m3", "m4", "m5")
		}},
		{"since_the_top_is_complete_with_nothing_missed", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			res := History(t, b, "room:h", q(top))
			Complete(t, res, 6)
			if res.Top != top {
				t.Fatalf("top %+v, want %+v", res.Top, top)
			}
		}},
		{"another_epoch_is_nothing", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			Incomplete(t, History(t, b, "room:h", q(adapter.Position{Offset: 2, Epoch: "0123456789abcdef"})), top)
		}},
		{"since_above_the_top_is_nothing", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			Incomplete(t, History(t, b, "room:h", q(at(top, 6))), top)
		}},
		{"more_missed_than_the_limit_is_nothing", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			over := q(at(top, 2))
			over.Limit = 2
			Incomplete(t, History(t, b, "room:h", over), top)
			over.Limit = 3
			Complete(t, History(t, b, "room:h", over), 3, "m3", "m4", "m5")
		}},
		{"entries_trimmed_by_size_are_nothing", func(t *testing.T, a, b adapter.Broker) {
			small := adapter.StreamOptions{Size: 3, TTL: time.Hour}
			top := five(t, a, "room:h", small)
			Incomplete(t, History(t, b, "room:h", q(at(top, 1))), top)
			Complete(t, History(t, b, "room:h", q(at(top, 2))), 3, "m3", "m4", "m5")
		}},
		{"entries_older_than_the_ttl_are_nothing", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			// The stream keeps them for an hour; a reader whose TTL is
			// 50ms must not be given them once they are older.
			short := adapter.HistoryQuery{Since: at(top, 2), Stream: adapter.StreamOptions{Size: 100, TTL: 50 * time.Millisecond, MetaTTL: time.Hour}}
			Eventually(t, "entries to age past the reader's TTL", func() error {
				res := History(t, b, "room:h", short)
				if res.Complete {
					return errors.New("still complete")
				}
				Incomplete(t, res, top)
				return nil
			})
		}},
		{"a_stream_past_its_ttl_is_nothing_and_keeps_its_position", func(t *testing.T, a, b adapter.Broker) {
			s := adapter.StreamOptions{Size: 100, TTL: 50 * time.Millisecond, MetaTTL: time.Hour}
			top := five(t, a, "room:h", s)
			Eventually(t, "the stream to expire", func() error {
				res := History(t, b, "room:h", adapter.HistoryQuery{Since: at(top, 4), Stream: s})
				if res.Complete {
					return errors.New("still complete")
				}
				Incomplete(t, res, top)
				return nil
			})
			if next := Publish(t, a, "room:h", "m6", withStream(s)); next != at(top, 6) {
				t.Fatalf("publish after expiry at %+v, want %+v", next, at(top, 6))
			}
		}},
		{"a_position_past_its_meta_ttl_is_forgotten_and_the_next_publish_starts_a_new_epoch", func(t *testing.T, a, b adapter.Broker) {
			s := adapter.StreamOptions{Size: 100, TTL: 10 * time.Millisecond} // MetaTTL 100ms
			top := five(t, a, "room:h", s)
			Eventually(t, "the position to expire", func() error {
				res := History(t, b, "room:h", adapter.HistoryQuery{Since: at(top, 4)})
				if !res.Top.IsZero() && res.Top.Epoch != top.Epoch {
					// A read without stream options creates nothing.
					t.Fatalf("a read after expiry made up position %+v", res.Top)
				}
				if !res.Top.IsZero() {
					return fmt.Errorf("top still %+v", res.Top)
				}
				Incomplete(t, res, adapter.Position{})
				return nil
			})
			if next := Publish(t, a, "room:h", "m6", withStream(s)); next.Offset != 1 || next.Epoch == top.Epoch {
				t.Fatalf("publish after the position expired at %+v, want offset 1 in a new epoch (old %q)", next, top.Epoch)
			}
		}},
		{"a_topic_without_a_stream_is_nothing", func(t *testing.T, a, b adapter.Broker) {
			res := History(t, b, "room:none", adapter.HistoryQuery{Since: adapter.Position{Offset: 1, Epoch: "x"}})
			Incomplete(t, res, adapter.Position{})
		}},
		{"an_epoch_longer_than_any_store_gives_is_nothing", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			long := adapter.Position{Offset: 2, Epoch: top.Epoch + string(bytes.Repeat([]byte("x"), adapter.MaxEpochLen))}
			Incomplete(t, History(t, b, "room:h", q(long)), top)
		}},
		{"a_zero_since_gives_only_the_top", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			Incomplete(t, History(t, b, "room:h", q(adapter.Position{})), top)
		}},
		{"reading_creates_the_epoch_so_a_client_that_got_nothing_recovers_later", func(t *testing.T, a, b adapter.Broker) {
			first := History(t, b, "room:new", q(adapter.Position{}))
			if first.Top.Offset != 0 || first.Top.Epoch == "" || first.Complete {
				t.Fatalf("first read %+v, want offset 0 in a new epoch", first)
			}
			if again := History(t, a, "room:new", q(adapter.Position{})); again.Top != first.Top {
				t.Fatalf("second read top %+v, want %+v", again.Top, first.Top)
			}
			if pos := Publish(t, a, "room:new", "m1", withStream(Stream)); pos != at(first.Top, 1) {
				t.Fatalf("first publish at %+v, want %+v", pos, at(first.Top, 1))
			}
			Complete(t, History(t, b, "room:new", q(first.Top)), 1, "m1")
		}},
		{"erase_forgets_entries_and_position", func(t *testing.T, a, b adapter.Broker) {
			top := five(t, a, "room:h", Stream)
			if err := b.Erase(context.Background(), "room:h"); err != nil {
				t.Fatal(err)
			}
			Incomplete(t, History(t, a, "room:h", adapter.HistoryQuery{Since: at(top, 2)}), adapter.Position{})
			next := Publish(t, a, "room:h", "after", withStream(Stream))
			if next.Offset != 1 || next.Epoch == top.Epoch {
				t.Fatalf("publish after erase at %+v, want offset 1 in a new epoch (old %q)", next, top.Epoch)
			}
			Incomplete(t, History(t, b, "room:h", q(at(top, 2))), next)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := nodes(t, 2)
			Attach(t, bs[0])
			Attach(t, bs[1])
			tt.run(t, bs[0], bs[1])
		})
	}
}

func runIdempotency(t *testing.T, nodes Nodes) {
	keyed := func(key string, s adapter.StreamOptions, ttl time.Duration) adapter.PublishOptions {
		return adapter.PublishOptions{Stream: s, IdempotencyKey: key, IdempotencyTTL: ttl}
	}
	for _, s := range []adapter.StreamOptions{Stream, {}} {
		name := "with_a_stream"
		if !s.Enabled() {
			name = "without_a_stream"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("a_retry_on_another_node_within_the_window_is_not_delivered_again", func(t *testing.T) {
				bs := nodes(t, 2)
				r := Attach(t, bs[0], "room:i")
				Attach(t, bs[1])
				first := Publish(t, bs[0], "room:i", "once", keyed("k1", s, time.Hour))
				pos, err := bs[1].Publish(context.Background(), "room:i", []byte("once"), keyed("k1", s, time.Hour))
				if !errors.Is(err, adapter.ErrDuplicate) || pos != first {
					t.Fatalf("retry: %+v, %v; want %+v, ErrDuplicate", pos, err, first)
				}
				Publish(t, bs[1], "room:i", "marker", adapter.PublishOptions{})
				if got := r.Until(t, "marker"); len(got) != 1 {
					t.Fatalf("delivered %d times, want once", len(got))
				}
				if s.Enabled() {
					Complete(t, History(t, bs[1], "room:i", adapter.HistoryQuery{Since: adapter.Position{Epoch: first.Epoch}, Stream: s}), 1, "once")
				}
			})
			t.Run("a_key_is_per_topic", func(t *testing.T) {
				b := nodes(t, 1)[0]
				r := Attach(t, b, "room:x", "room:y")
				Publish(t, b, "room:x", "x", keyed("k", s, time.Hour))
				Publish(t, b, "room:y", "y", keyed("k", s, time.Hour))
				Publish(t, b, "room:x", "marker x", adapter.PublishOptions{})
				Publish(t, b, "room:y", "marker y", adapter.PublishOptions{})
				if got := r.Until(t, "marker x", "marker y"); len(got) != 2 {
					t.Fatalf("delivered %d messages, want 2", len(got))
				}
			})
			t.Run("after_the_window_a_retry_is_delivered", func(t *testing.T) {
				b := nodes(t, 1)[0]
				r := Attach(t, b, "room:w")
				Publish(t, b, "room:w", "again", keyed("kw", s, 50*time.Millisecond))
				Eventually(t, "the key to expire", func() error {
					_, err := b.Publish(context.Background(), "room:w", []byte("again"), keyed("kw", s, 50*time.Millisecond))
					return err
				})
				Publish(t, b, "room:w", "marker", adapter.PublishOptions{})
				if got := r.Until(t, "marker"); len(got) != 2 {
					t.Fatalf("delivered %d times, want twice", len(got))
				}
			})
		})
	}
}

func runInvalid(t *testing.T, nodes Nodes) {
	long := string(bytes.Repeat([]byte("k"), adapter.MaxIdempotencyKeyLen+1))
	tests := []struct {
		name string
		opts adapter.PublishOptions
	}{
		{"negative_size", adapter.PublishOptions{Stream: adapter.StreamOptions{Size: -1}}},
		{"negative_ttl", adapter.PublishOptions{Stream: adapter.StreamOptions{Size: 10, TTL: -time.Second}}},
		{"negative_meta_ttl", adapter.PublishOptions{Stream: adapter.StreamOptions{Size: 10, MetaTTL: -time.Second}}},
		{"idempotency_key_too_long", adapter.PublishOptions{IdempotencyKey: long}},
		{"negative_idempotency_ttl", adapter.PublishOptions{IdempotencyKey: "k", IdempotencyTTL: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"_is_refused_and_changes_nothing", func(t *testing.T) {
			b := nodes(t, 1)[0]
			r := Attach(t, b, "room:bad")
			top := Publish(t, b, "room:bad", "before", withStream(Stream))
			_, err := b.Publish(context.Background(), "room:bad", []byte("bad"), tt.opts)
			if !errors.Is(err, adapter.ErrInvalidOptions) {
				t.Fatalf("err = %v, want ErrInvalidOptions", err)
			}
			Publish(t, b, "room:bad", "marker", adapter.PublishOptions{})
			if got := r.Until(t, "marker"); len(got) != 1 {
				t.Fatalf("delivered %d messages, want only the one before", len(got))
			}
			Complete(t, History(t, b, "room:bad", adapter.HistoryQuery{Since: adapter.Position{Epoch: top.Epoch}, Stream: Stream}), 1, "before")
		})
	}
	t.Run("negative_history_limit_is_refused", func(t *testing.T) {
		b := nodes(t, 1)[0]
		_, err := b.History(context.Background(), "room:bad", adapter.HistoryQuery{Limit: -1})
		if !errors.Is(err, adapter.ErrInvalidOptions) {
			t.Fatalf("err = %v, want ErrInvalidOptions", err)
		}
	})
}
