package hub_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
)

// TestNothingLeaksAcrossThousandsOfConnections opens and drops connections
// every way a connection can end and checks that every counter — connection
// table, admission slots, broker subscriptions, goroutines — returns to zero.
func TestNothingLeaksAcrossThousandsOfConnections(t *testing.T) {
	limits, err := guard.NewLimits(guard.LimitsOptions{PerUser: 50})
	if err != nil {
		t.Fatal(err)
	}
	broker := memory.New()
	e := newEnv(t, func(o *hub.Options) {
		o.Admit = limits.Admit
		o.Broker = broker
		o.Rooms = allowAll
	})
	baseTopics := broker.Topics()
	baseGoroutines := runtime.NumGoroutine()
	const workers, perWorker = 16, 125 // 2,000 connections
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				user := string(rune('a' + (w+i)%26))
				ws, _, err := e.dialRaw(ctx, e.header(token(t, claims{sub: user, tenant: "t" + user})))
				if err != nil {
					cancel()
					errs <- err
					return
				}
				_, _, _ = ws.Read(ctx) // welcome
				_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"topic:`+user+`"}`))
				switch i % 3 {
				case 0:
					ws.Close(websocket.StatusNormalClosure, "")
				case 1:
					ws.CloseNow()
				default:
					// A message the server refuses by closing (binary frame).
					_ = ws.Write(ctx, websocket.MessageBinary, []byte{0})
					_, _, _ = ws.Read(ctx)
					ws.CloseNow()
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, "all counters back to zero", func() bool {
		return e.hub.Connections() == 0 && limits.Users() == 0 && broker.Topics() == baseTopics
	})
	eventually(t, "goroutines to wind down", func() bool {
		return runtime.NumGoroutine() <= baseGoroutines+5
	})
}
