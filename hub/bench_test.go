package hub_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// BenchmarkBroadcastLocal1000 measures a room broadcast to 1,000 local
// members, end to end over loopback: publish, fan-out, write, and every
// client reading its copy. One op is one broadcast delivered 1,000 times.
func BenchmarkBroadcastLocal1000(b *testing.B) {
	const members = 1000
	e := newEnv(b, func(o *hub.Options) { o.SendQueueMessages = 4096 })
	var received atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range members {
		ws, _, err := e.dialRaw(ctx, e.header(token(b, claims{sub: "u" + itoa(i), tenant: "bench"})))
		if err != nil {
			b.Fatal(err)
		}
		ws.SetReadLimit(1 << 20)
		if _, _, err := ws.Read(ctx); err != nil { // welcome
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	payload := map[string]any{"content": "hello, room", "sentAt": time.Now().UnixNano()}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		want := int64(i+1) * members
		if err := e.hub.ToTenant(ctx, "bench", "message:new", payload); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for received.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("delivered %d of %d", received.Load(), want)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(received.Load())/b.Elapsed().Seconds(), "deliveries/s")
	cancel()
	wg.Wait()
}

func itoa(i int) string {
	var buf [20]byte
	n := len(buf)
	for {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(buf[n:])
		}
	}
}
