package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/redistest"
)

func benchNode(b *testing.B, addr string, h adapter.Handler) *Broker {
	b.Helper()
	n, err := New(Options{Addrs: []string{addr}, DeliveryBuffer: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	if err := n.Attach(h); err != nil {
		b.Fatal(err)
	}
	if err := n.Subscribe(context.Background(), "room:bench"); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkPublishLatency measures one Publish at a time, a 200-byte frame,
// and reports the 50th and 99th percentile of the call.
func BenchmarkPublishLatency(b *testing.B) {
	srv := redistest.Start(b)
	pub := benchNode(b, srv.Addr(), func(adapter.Message) {})
	payload := make([]byte, 200)
	lat := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := pub.Publish(ctx, "room:bench", payload, adapter.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkTwoNodes publishes from one node with concurrent callers and
// counts what a second node receives: messages per second across Redis.
func BenchmarkTwoNodes(b *testing.B) {
	srv := redistest.Start(b)
	var got atomic.Int64
	recv := benchNode(b, srv.Addr(), func(adapter.Message) { got.Add(1) })
	pub := benchNode(b, srv.Addr(), func(adapter.Message) {})
	payload := make([]byte, 200)
	ctx := context.Background()
	var sent atomic.Int64
	// Many concurrent broadcasts, as a busy hub makes, let rueidis
	// pipeline them.
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pub.Publish(ctx, "room:bench", payload, adapter.PublishOptions{}); err != nil {
				b.Error(err)
				return
			}
			sent.Add(1)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for got.Load()+int64(recv.Stats().Dropped) < sent.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := recv.Stats()
	b.ReportMetric(float64(got.Load())/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(float64(st.Dropped), "dropped")
}

// BenchmarkPublishStream compares a plain publish with one that goes into
// a stream (and with an idempotency key too), from 16 concurrent callers,
// and reports the Redis CPU time each costs (INFO commandstats: the usec
// of the one command the node sends, the script's inner commands included).
func BenchmarkPublishStream(b *testing.B) {
	srv := redistest.Start(b)
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	usec := func(cmd string) float64 {
		info, err := rc.Do(context.Background(), rc.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			b.Fatal(err)
		}
		_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":")
		if !ok {
			return 0
		}
		_, rest, _ = strings.Cut(rest, "usec=")
		v, _ := strconv.ParseFloat(rest[:strings.IndexByte(rest, ',')], 64)
		return v
	}
	stream := adapter.StreamOptions{Size: 100, TTL: time.Minute}
	var keys atomic.Int64
	for _, bc := range []struct {
		name string
		cmd  string
		opts func() adapter.PublishOptions
	}{
		{"plain", "publish", func() adapter.PublishOptions { return adapter.PublishOptions{} }},
		{"stream", "evalsha", func() adapter.PublishOptions { return adapter.PublishOptions{Stream: stream} }},
		{"stream_and_key", "evalsha", func() adapter.PublishOptions {
			return adapter.PublishOptions{Stream: stream, IdempotencyKey: strconv.FormatInt(keys.Add(1), 10)}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pub := benchNode(b, srv.Addr(), func(adapter.Message) {})
			payload := make([]byte, 200)
			ctx := context.Background()
			_, _ = pub.Publish(ctx, "room:bench", payload, bc.opts()) // loads the script
			before := usec(bc.cmd)
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := pub.Publish(ctx, "room:bench", payload, bc.opts()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric((usec(bc.cmd)-before)/float64(b.N), "redis-µs/op")
		})
	}
}
