package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/redistest"
)

// waitMessage drains s until topic delivers payload.
func (s *sink) waitMessage(t *testing.T, topic string, payload []byte) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-s.ch:
			if m.topic == topic && string(m.payload) == string(payload) {
				return
			}
		case <-deadline:
			t.Fatalf("%s never delivered %q within %s", topic, payload, waitFor)
		}
	}
}

// loadGen publishes continuously and records how long each call took.
type loadGen struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex // guards the fields below
	errs    int
	ok      int
	slowest time.Duration
}

func startLoad(b *Broker, topics []string) *loadGen {
	g := &loadGen{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			start := time.Now()
			_, err := b.Publish(context.Background(), topics[i%len(topics)], []byte("load"), adapter.PublishOptions{})
			d := time.Since(start)
			g.mu.Lock()
			g.slowest = max(g.slowest, d)
			if err != nil {
				g.errs++
			} else {
				g.ok++
			}
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *loadGen) errors() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.errs
}

func (g *loadGen) halt() (ok, errs int, slowest time.Duration) {
	close(g.stop)
	<-g.done
	return g.ok, g.errs, g.slowest
}

func TestRedisRestartUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	check := noGoroutineLeak(t)
	const publishTimeout = 300 * time.Millisecond
	opts := Options{Addrs: []string{srv.Addr()}, PublishTimeout: publishTimeout, ProbeInterval: 200 * time.Millisecond}
	a, sa := node(t, opts)
	b, sb := node(t, opts)
	topics := []string{"all", "room:0", "room:1", "room:2", "room:3"}
	subscribe(t, a, topics...)
	subscribe(t, b, topics...)

	load := startLoad(a, topics)
	sb.waitMessage(t, "room:1", []byte("load"))

	srv.Kill()
	for _, n := range []*Broker{a, b} {
		eventually(t, "Health reports the outage", func() error {
			if err := healthy(n); !errors.Is(err, ErrUnavailable) {
				return fmt.Errorf("Health = %v", err)
			}
			return nil
		})
	}
	eventually(t, "publishes fail during the outage", func() error {
		if n := load.errors(); n < 100 {
			return fmt.Errorf("%d publish errors so far", n)
		}
		return nil
	})
	if err := b.Subscribe(context.Background(), "room:new"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Subscribe during the outage: %v", err)
	}

	srv.Restart()
	for _, n := range []*Broker{a, b} {
		eventually(t, "Health recovers", func() error { return healthy(n) })
	}
	ok, errs, slowest := load.halt()
	t.Logf("load: %d published, %d failed, slowest call %s", ok, errs, slowest)
	// Allow scheduling slack under -race on top of the configured bound.
	if slowest > publishTimeout+500*time.Millisecond {
		t.Fatalf("a Publish took %s with PublishTimeout %s", slowest, publishTimeout)
	}
	for _, topic := range topics {
		marker := []byte("after " + topic)
		publish(t, a, topic, marker)
		sa.waitMessage(t, topic, marker)
		sb.waitMessage(t, topic, marker)
	}
	for _, n := range []*Broker{a, b} {
		if st := n.Stats(); st.Resubscribes == 0 {
			t.Fatalf("stats %+v: no resubscription counted", st)
		}
	}
	if st := a.Stats(); st.PublishErrors == 0 {
		t.Fatalf("stats %+v: no publish error counted", st)
	}
	a.Close()
	b.Close()
	check()
}

func TestDeliveryBufferOverflow(t *testing.T) {
	srv := redistest.Start(t)
	const buffer = 8
	opts := Options{Addrs: []string{srv.Addr()}, DeliveryBuffer: buffer, ProbeInterval: 50 * time.Millisecond}
	pub, _ := node(t, opts)
	b, err := New(Options{Addrs: opts.Addrs, DeliveryBuffer: buffer, ProbeInterval: opts.ProbeInterval, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	// Let the blocked handler go before Close waits for it, also when the
	// test fails half-way: a deadlock would hide the failure.
	var once sync.Once
	letGo := func() { once.Do(func() { close(release) }) }
	defer letGo()
	var delivered sync.WaitGroup
	b.Attach(func(adapter.Message) {
		select {
		case entered <- struct{}{}:
			<-release // the first call blocks until the test lets go
		default:
		}
		delivered.Done()
	})
	subscribe(t, b, "room:flood")
	delivered.Add(1 + buffer)
	publish(t, pub, "room:flood", []byte("blocker"))
	<-entered

	const flood = 100
	start := time.Now()
	for range flood {
		publish(t, pub, "room:flood", []byte("x"))
	}
	t.Logf("%d publishes in %s with the handler blocked", flood, time.Since(start))
	eventually(t, "overflow counted", func() error {
		if st := b.Stats(); st.Dropped != flood-buffer {
			return fmt.Errorf("Dropped = %d, want %d", st.Dropped, flood-buffer)
		}
		return nil
	})
	// rueidis' reader still runs: probes keep coming back.
	s := b.route.shards[0]
	s.mu.Lock()
	recv := s.probeRecv
	s.mu.Unlock()
	eventually(t, "probes flow while the handler is blocked", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.probeRecv < recv+2 {
			return fmt.Errorf("probe %d, was %d", s.probeRecv, recv)
		}
		return nil
	})
	if err := healthy(b); err != nil {
		t.Fatalf("Health with a blocked handler: %v", err)
	}
	letGo()
	delivered.Wait()
	// The handler returns before deliver counts it: poll for the count.
	eventually(t, "every buffered message delivered", func() error {
		if st := b.Stats(); st.Delivered != 1+buffer {
			return fmt.Errorf("Delivered = %d, want %d", st.Delivered, 1+buffer)
		}
		return nil
	})
}

func TestLivenessProbe(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv.Addr())
	const interval = 200 * time.Millisecond
	opts := Options{Addrs: []string{srv.Addr()}, PublishTimeout: 300 * time.Millisecond, ProbeInterval: interval}

	t.Run("killed_pubsub_connection_is_resubscribed", func(t *testing.T) {
		b, s := node(t, opts)
		subscribe(t, b, "room:a", "room:b")
		if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "resubscribed", func() error {
			if st := b.Stats(); st.Resubscribes == 0 {
				return fmt.Errorf("stats %+v", st)
			}
			return healthy(b)
		})
		if got := channels(t, rc, false, "wsgate:room:*"); !slices.Equal(got, []string{"wsgate:room:a", "wsgate:room:b"}) {
			t.Fatalf("channels after resubscription: %v", got)
		}
		publish(t, b, "room:b", []byte("again"))
		s.waitMessage(t, "room:b", []byte("again"))
	})

	t.Run("frozen_redis_fails_health_within_two_intervals_then_recovers", func(t *testing.T) {
		b, s := node(t, opts)
		subscribe(t, b, "room:a")
		eventually(t, "healthy", func() error { return healthy(b) })
		srv.Pause()
		paused := time.Now()
		// The TCP connection stays open, so only the probe can notice;
		// rueidis' own keepalive would take about ten seconds.
		var err error
		for err == nil && time.Since(paused) < 5*time.Second {
			time.Sleep(10 * time.Millisecond)
			err = healthy(b)
		}
		detected := time.Since(paused)
		srv.Resume()
		if err == nil {
			t.Fatal("Health stayed nil while Redis was frozen")
		}
		t.Logf("frozen Redis detected after %s: %v", detected.Round(time.Millisecond), err)
		if !errors.Is(err, ErrProbeLate) {
			t.Fatalf("Health = %v", err)
		}
		if detected > 2*interval+opts.PublishTimeout+time.Second {
			t.Fatalf("detection took %s", detected)
		}
		eventually(t, "healthy after resume", func() error { return healthy(b) })
		publish(t, b, "room:a", []byte("back"))
		s.waitMessage(t, "room:a", []byte("back"))
	})
}

func TestCloseIsPromptDuringAnOutage(t *testing.T) {
	const publishTimeout = 300 * time.Millisecond
	tests := []struct {
		name   string
		outage func(*redistest.Server)
		undo   func(*redistest.Server)
	}{
		{"redis_killed", (*redistest.Server).Kill, (*redistest.Server).Restart},
		{"redis_frozen", (*redistest.Server).Pause, (*redistest.Server).Resume},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			check := noGoroutineLeak(t)
			b, _ := node(t, Options{Addrs: []string{srv.Addr()}, PublishTimeout: publishTimeout, ProbeInterval: 100 * time.Millisecond})
			subscribe(t, b, "room:a")
			tt.outage(srv)
			defer tt.undo(srv)
			eventually(t, "outage noticed", func() error {
				if healthy(b) == nil {
					return errors.New("still healthy")
				}
				return nil
			})
			start := time.Now()
			b.Close()
			if d := time.Since(start); d > 3*publishTimeout+time.Second {
				t.Fatalf("Close took %s", d)
			} else {
				t.Logf("Close took %s", d)
			}
			check()
		})
	}
}
