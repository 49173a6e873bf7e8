package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/brokertest"
	"github.com/wsgate/wsgate/internal/redistest"
)

// nodesOn returns a brokertest.Nodes whose brokers share addrs, each call
// with a prefix of its own so that tests sharing one Redis do not see each
// other's topics.
func nodesOn(addrs []string, o Options) brokertest.Nodes {
	var n atomic.Int64
	return func(t *testing.T, count int) []adapter.Broker {
		o := o
		o.Addrs = addrs
		o.Prefix = "t" + strconv.FormatInt(n.Add(1), 10) + ":"
		o.Logger = testLogger(t)
		out := make([]adapter.Broker, count)
		for i := range out {
			b, err := New(o)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { b.Close() })
			out[i] = b
		}
		return out
	}
}

func TestStreams(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, nodesOn([]string{srv.Addr()}, Options{HMACKey: []byte("0123456789abcdef0123456789abcdef")}))
}

func TestStreamsCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	brokertest.Run(t, nodesOn(c.Addrs(), Options{}))
	t.Run("a_topic_with_braces_keeps_its_keys_and_channel_on_one_slot", func(t *testing.T) {
		b := nodesOn(c.Addrs(), Options{})(t, 1)[0]
		topics := []string{"user:{x}y", "user:a}b", "user:{}", "user:{"}
		r := brokertest.Attach(t, b, topics...)
		for _, topic := range topics {
			pos := brokertest.Publish(t, b, topic, "hi", adapter.PublishOptions{Stream: brokertest.Stream, IdempotencyKey: "k"})
			if m := r.Next(t); string(m.Payload) != "hi" || m.Pos != pos {
				t.Fatalf("%s: got %q at %+v, want hi at %+v", topic, m.Payload, m.Pos, pos)
			}
			res := brokertest.History(t, b, topic, adapter.HistoryQuery{Since: adapter.Position{Epoch: pos.Epoch}, Stream: brokertest.Stream})
			brokertest.Complete(t, res, 1, "hi")
		}
	})
}

func TestStreamKeys(t *testing.T) {
	seen := map[string]string{}
	for _, ch := range []string{"wsgate:room:a", "wsgate:user:{x}y", "wsgate:user:a}b", "wsgate:user:{", "{}", "wsgate:room:a:m", "wsgate:room:a:i:x"} {
		meta, stream := streamKeys(ch)
		idem := idempotencyKey(ch, "key")
		for _, k := range []string{meta, stream, idem} {
			if slotOf(k) != slotOf(ch) {
				t.Errorf("key %q of channel %q is on slot %d, the channel on %d", k, ch, slotOf(k), slotOf(ch))
			}
			if other, dup := seen[k]; dup {
				t.Errorf("key %q of channel %q is also a key of %q", k, ch, other)
			}
			seen[k] = ch
		}
	}
}

func TestSplitPosition(t *testing.T) {
	tests := []struct {
		name, msg string
		pos       adapter.Position
		rest      string
		ok        bool
	}{
		{"plain", "\x00payload", adapter.Position{}, "payload", true},
		{"positioned", "\x0112:abcdef:pay:load", adapter.Position{Offset: 12, Epoch: "abcdef"}, "pay:load", true},
		{"empty", "", adapter.Position{}, "", false},
		{"unknown_mark", "\x02x", adapter.Position{}, "", false},
		{"no_offset", "\x01:e:p", adapter.Position{}, "", false},
		{"offset_zero", "\x010:e:p", adapter.Position{}, "", false},
		{"offset_not_a_number", "\x01x1:e:p", adapter.Position{}, "", false},
		{"offset_overflows", "\x01184467440737095516160:e:p", adapter.Position{}, "", false},
		{"no_epoch", "\x011::p", adapter.Position{}, "", false},
		{"unterminated_epoch", "\x011:e", adapter.Position{}, "", false},
		{"epoch_too_long", "\x011:" + strings.Repeat("e", maxEpochLen+1) + ":p", adapter.Position{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos, rest, err := splitPosition(tt.msg)
			if (err == nil) != tt.ok || pos != tt.pos || rest != tt.rest {
				t.Fatalf("splitPosition(%q) = %+v, %q, %v", tt.msg, pos, rest, err)
			}
		})
	}
}

var stream = adapter.PublishOptions{Stream: brokertest.Stream}

// epochLost publishes, breaks continuity with lose, and checks that the
// next publish starts a new epoch at offset 1 and that recovering from the
// old position is refused.
func epochLost(t *testing.T, srv *redistest.Server, lose func(b *Broker)) {
	t.Helper()
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}})
	var old adapter.Position
	for i := range 5 {
		old = brokertest.Publish(t, b, "room:e", fmt.Sprint(i), stream)
	}
	lose(b)
	var next adapter.Position
	eventually(t, "a publish after the loss", func() error {
		var err error
		next, err = b.Publish(context.Background(), "room:e", []byte("after"), stream)
		return err
	})
	if next.Offset != 1 || next.Epoch == old.Epoch {
		t.Fatalf("after the loss at %+v, before at %+v: want offset 1 in a new epoch", next, old)
	}
	res := historySoon(t, b, "room:e", adapter.HistoryQuery{Since: adapter.Position{Offset: 0, Epoch: old.Epoch}, Stream: brokertest.Stream})
	brokertest.Incomplete(t, res, next)
	brokertest.Complete(t, historySoon(t, b, "room:e", adapter.HistoryQuery{Since: adapter.Position{Epoch: next.Epoch}}), 1, "after")
}

// historySoon reads history, retrying while the broker reports Redis
// unavailable: after a restart, each of rueidis' connections fails once
// before it reconnects, and the broker does not retry on its own.
func historySoon(t *testing.T, b adapter.Broker, topic string, q adapter.HistoryQuery) adapter.HistoryResult {
	t.Helper()
	var res adapter.HistoryResult
	eventually(t, "a history read", func() error {
		var err error
		res, err = b.History(context.Background(), topic, q)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("History: %v", err)
		}
		return err
	})
	return res
}

func TestStreamsEpochRotation(t *testing.T) {
	t.Run("after_a_restart_without_persistence", func(t *testing.T) {
		srv := redistest.Start(t)
		epochLost(t, srv, func(*Broker) { srv.Restart() })
	})
	t.Run("after_FLUSHALL", func(t *testing.T) {
		srv := redistest.Start(t)
		epochLost(t, srv, func(*Broker) {
			if _, err := srv.Do("FLUSHALL"); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("after_the_position_key_is_lost_while_the_stream_is_not", func(t *testing.T) {
		srv := redistest.Start(t)
		epochLost(t, srv, func(b *Broker) {
			meta, stream := streamKeys(b.opts.Prefix + "room:e")
			if n, err := srv.Do("DEL", meta); err != nil || n != "1" {
				t.Fatalf("DEL %s: %q, %v", meta, n, err)
			}
			if n, _ := srv.Do("XLEN", stream); n != "5" {
				t.Fatalf("stream holds %s entries, want the 5 left behind", n)
			}
		})
	})
}

func TestStreamsStoreDown(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}, PublishTimeout: 500 * time.Millisecond})
	top := brokertest.Publish(t, b, "room:d", "x", stream)
	srv.Kill()
	res, err := b.History(context.Background(), "room:d", adapter.HistoryQuery{Since: adapter.Position{Epoch: top.Epoch}, Stream: brokertest.Stream})
	if !errors.Is(err, ErrUnavailable) || res.Complete || res.Entries != nil || !res.Top.IsZero() {
		t.Fatalf("History while Redis is down: %+v, %v; want nothing and ErrUnavailable", res, err)
	}
	if _, err := b.Publish(context.Background(), "room:d", []byte("y"), stream); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish while Redis is down: %v", err)
	}
	if err := b.Erase(context.Background(), "room:d"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Erase while Redis is down: %v", err)
	}
}

// A publish with a stream is one command from the node: the script call.
// Everything else happens inside it.
func TestStreamsOneCommandPerPublish(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}, ProbeInterval: time.Hour})
	rc := rawClient(t, srv.Addr())
	brokertest.Publish(t, b, "room:warm", "load the script", stream)
	const n = 50
	before := commandStats(t, rc)
	for i := range n {
		brokertest.Publish(t, b, "room:c", fmt.Sprint(i), stream)
	}
	after := commandStats(t, rc)
	// A connection opened meanwhile (rueidis dials lazily) says hello; the
	// test's own INFO and keep-alive pings are not the publishes' either.
	notPublishing := map[string]bool{"ping": true, "info": true, "hello": true, "client": true}
	got := map[string]int{}
	for cmd, calls := range after {
		if d := calls - before[cmd]; d != 0 && !notPublishing[cmd] {
			got[cmd] = d
		}
	}
	// The first publish of room:c creates its epoch: one HSET and one DEL
	// of a stream left behind.
	want := map[string]int{"evalsha": n, "time": n, "hmget": n, "hset": 1, "del": 1,
		"hincrby": n, "xadd": n, "pexpire": 2 * n, "publish": n}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("commands for %d publishes: %v\nwant %v", n, got, want)
	}
}

// commandStats returns the calls of every command from INFO commandstats.
func commandStats(t *testing.T, c rueidis.Client) map[string]int {
	t.Helper()
	info, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	out := map[string]int{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		n, err := redistest.CommandCalls(info, name)
		if err != nil {
			t.Fatalf("INFO commandstats %q: %v", rest, err)
		}
		out[name] = n
	}
	return out
}

// A process that publishes once into each of many user rooms and never
// again must not leave Redis holding them.
func TestStreamsRedisIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}})
	dbsize := func() int {
		n, err := srv.Do("DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.Atoi(n)
		return v
	}
	rc := rawClient(t, srv.Addr())
	baseline, before := dbsize(), commandStats(t, rc)
	opts := adapter.PublishOptions{
		Stream:         adapter.StreamOptions{Size: 10, TTL: 100 * time.Millisecond},
		IdempotencyTTL: time.Second,
	}
	const topics, workers = 100_000, 32
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Go(func() {
			o := opts
			for i := w; i < topics; i += workers {
				o.IdempotencyKey = strconv.Itoa(i)
				if _, err := b.Publish(context.Background(), "user:"+strconv.Itoa(i), []byte("notification"), o); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d publishes failed", f)
	}
	// The first keys may have expired already: count what was written.
	peak, after := dbsize(), commandStats(t, rc)
	if xadd, set := after["xadd"]-before["xadd"], after["set"]-before["set"]; xadd != topics || set != topics {
		t.Fatalf("%d XADD and %d SET for %d one-shot topics", xadd, set, topics)
	}
	deadline := time.Now().Add(60 * time.Second)
	for dbsize() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("DBSIZE %d a minute after the TTLs (1s), %d before", dbsize(), baseline)
		}
		time.Sleep(50 * time.Millisecond) // poll interval; the deadline bounds it
	}
	t.Logf("DBSIZE %d before, %d after publishing to %d topics, back to %d", baseline, peak, topics, dbsize())
}

// With a key, every entry History returns carries a valid tag: one written
// into the stream behind the brokers' back makes the recovery fail rather
// than hand a forged frame to clients. The position header of a live
// message is outside the tag (Redis assigns it), so a message is accepted
// or refused on its tag alone.
func TestStreamsHMAC(t *testing.T) {
	srv := redistest.Start(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	b, _ := node(t, Options{Addrs: []string{srv.Addr()}, HMACKey: key})
	const topic, channel = "room:h", "wsgate:room:h"
	meta, streamKey := streamKeys(channel)

	// forge appends an entry at the next offset, as anyone with write
	// access to Redis could.
	forge := func(t *testing.T, d []byte) adapter.Position {
		t.Helper()
		top, err := srv.Do("HINCRBY", meta, "o", "1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Do("XADD", streamKey, top+"-0", "t", strconv.FormatInt(time.Now().UnixMilli(), 10), "d", string(d)); err != nil {
			t.Fatal(err)
		}
		epoch, _ := srv.Do("HGET", meta, "e")
		n, _ := strconv.ParseUint(top, 10, 64)
		return adapter.Position{Offset: n, Epoch: epoch}
	}
	first := brokertest.Publish(t, b, topic, "genuine", stream)
	since := adapter.HistoryQuery{Since: adapter.Position{Epoch: first.Epoch}, Stream: brokertest.Stream}

	t.Run("an_entry_sealed_with_the_key_is_recovered", func(t *testing.T) {
		top := forge(t, newSigner(key, [8]byte{'t', 'e', 's', 't'}).seal(channel, []byte("sealed")))
		brokertest.Complete(t, brokertest.History(t, b, topic, since), 1, "genuine", "sealed")
		if top.Offset != 2 {
			t.Fatalf("forged at %+v", top)
		}
	})
	t.Run("an_unsigned_entry_makes_the_recovery_fail_and_is_counted", func(t *testing.T) {
		rejected := b.Stats().Rejected
		top := forge(t, []byte("unsigned entry, long enough to hold a tag"))
		brokertest.Incomplete(t, brokertest.History(t, b, topic, since), top)
		if got := b.Stats().Rejected; got != rejected+1 {
			t.Fatalf("Rejected = %d, want %d", got, rejected+1)
		}
	})
	t.Run("a_reader_with_another_key_recovers_nothing", func(t *testing.T) {
		other, _ := node(t, Options{Addrs: []string{srv.Addr()}, HMACKey: []byte("another key, also 32 bytes long.")})
		res := brokertest.History(t, other, topic, adapter.HistoryQuery{Since: first, Stream: brokertest.Stream})
		if res.Complete {
			t.Fatal("entries sealed with another key were recovered")
		}
	})

	t.Run("live_messages_are_judged_by_their_tag", func(t *testing.T) {
		r, s := node(t, Options{Addrs: []string{srv.Addr()}, HMACKey: key})
		subscribe(t, r, "room:live", "room:end")
		inject := func(msg string) {
			if _, err := srv.Do("PUBLISH", "wsgate:room:live", msg); err != nil {
				t.Fatal(err)
			}
		}
		sealed := string(newSigner(key, [8]byte{'t', 'e', 's', 't'}).seal("wsgate:room:live", []byte("hi")))
		inject("\x017:e:" + sealed)                            // delivered, at the position Redis wrote
		inject("\x017:e:" + "unsigned, long enough for a tag") // refused
		inject("\x01x:e:" + sealed)                            // malformed header: refused
		publish(t, b, "room:end", nil)
		// One connection delivers in order: the marker comes after all three.
		other := s.waitTopic(t, "room:end")
		if len(other) != 1 || string(other[0].payload) != "hi" || other[0].pos != (adapter.Position{Offset: 7, Epoch: "e"}) {
			t.Fatalf("delivered %+v, want only the sealed message, at 7:e", other)
		}
		if got := r.Stats().Rejected; got != 2 {
			t.Fatalf("Rejected = %d, want 2", got)
		}
	})
}

// The operator's case: a publish times out while Redis is frozen, so the
// caller is told to retry, and retries until Redis answers. Whether the
// first attempt reached Redis (and ran when it thawed) or not (rueidis may
// not have written it), the notification is delivered exactly once.
func TestStreamsRetryAfterAFrozenRedis(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{Addrs: []string{srv.Addr()}, PublishTimeout: 200 * time.Millisecond}
	pub, _ := node(t, o)
	recv, s := node(t, Options{Addrs: o.Addrs})
	subscribe(t, recv, "user:42")
	opts := adapter.PublishOptions{Stream: brokertest.Stream, IdempotencyKey: "order-7-shipped"}
	// Redis has the script, as it has after a node's first publish: a
	// frozen EVALSHA of an unknown script would only thaw into NOSCRIPT.
	brokertest.Publish(t, pub, "room:warm", "x", adapter.PublishOptions{Stream: brokertest.Stream})

	srv.Pause()
	_, err := pub.Publish(context.Background(), "user:42", []byte("shipped"), opts)
	srv.Resume()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publish to a frozen Redis: %v, want ErrUnavailable", err)
	}
	var retry error
	eventually(t, "a retry to be answered", func() error {
		_, retry = pub.Publish(context.Background(), "user:42", []byte("shipped"), opts)
		if errors.Is(retry, ErrUnavailable) {
			return retry
		}
		return nil
	})
	if retry != nil && !errors.Is(retry, adapter.ErrDuplicate) {
		t.Fatalf("retry: %v", retry)
	}
	// Once a retry was answered, the key is set: any attempt still in
	// flight is a duplicate, so the marker comes after every delivery.
	publish(t, pub, "user:42", []byte("marker"))
	got := 0
	for {
		var msg message
		select {
		case msg = <-s.ch:
		case <-time.After(waitFor):
			t.Fatalf("no marker within %s", waitFor)
		}
		if string(msg.payload) == "marker" {
			break
		}
		got++
	}
	if got != 1 {
		t.Fatalf("delivered %d times (retry: %v), want once", got, retry)
	}
	t.Logf("the first attempt ran when Redis thawed: %v", errors.Is(retry, adapter.ErrDuplicate))
}
