package client_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
)

// TestThousandDroppedClientsComeBackSpreadOverTime connects 1,000 clients,
// drops every connection at once (as when a node's network blips), and
// checks that they come back spread over the first backoff window (full
// jitter), not in one burst; then that closing them all leaves no goroutine
// behind.
//
// Two measures: the waits the clients drew (from OnState), free of
// scheduling noise, and the instants they actually dialed (from their
// HTTP transport). A stall of this process — GC, -race, two cores shared
// with other test runs — makes every timer due during it fire together
// right after it, so the burst bound on actual dials is only applied when
// a probe saw no stall longer than maxStall; the spread bound always is.
func TestThousandDroppedClientsComeBackSpreadOverTime(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	const (
		clients = 1000
		window  = 2 * time.Second // Backoff.Min: the jitter window of the first attempt
		bucket  = 100 * time.Millisecond
		// Uniform jitter puts 5% (±0.7%) of the dials in each bucket; a
		// burst puts nearly all of them in one.
		maxShare = 0.20
		// A stall of S puts S/window of the dials in one bucket on top of
		// its own 5%: 200 ms keep that at 15%.
		maxStall = 200 * time.Millisecond
	)
	baseline := runtime.NumGoroutine()
	h := newHub(t, nil) // no guard in front: no per-IP throttle or per-user limit
	s := startServer(t, h)
	var mu sync.Mutex // guards dials and drawn
	var dials, drawn []time.Time
	var dropped time.Time // set before the drop, read after
	var dialer net.Dialer
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, time.Now())
		mu.Unlock()
		return dialer.DialContext(ctx, network, addr)
	}}
	httpClient := &http.Client{Transport: transport}

	var back sync.WaitGroup // clients connected a second time
	back.Add(clients)
	cs := make([]*client.Client, clients)
	started := time.Now()
	forEach(t, clients, func(i int) error {
		opts := s.options(t, fmt.Sprint("user", i))
		opts.Backoff = client.Backoff{Min: window, Max: 4 * window}
		opts.HTTPClient = httpClient
		connected := 0 // OnState calls are sequential per client
		opts.OnState = func(st client.State) {
			switch {
			case st.Phase == client.Connected:
				if connected++; connected == 2 {
					back.Done()
				}
			case st.Phase == client.Reconnecting && st.Attempt == 1:
				mu.Lock()
				drawn = append(drawn, dropped.Add(st.Delay))
				mu.Unlock()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, opts)
		cs[i] = c
		return err
	})
	t.Logf("%d clients connected in %v, %d goroutines", clients, time.Since(started).Round(time.Millisecond), runtime.NumGoroutine())

	mu.Lock()
	dials = nil
	dropped = time.Now()
	mu.Unlock()
	s.recordArrivals()
	stopProbe, stall := stallProbe()
	s.dropConns()
	allBack := make(chan struct{})
	go func() { back.Wait(); close(allBack) }()
	select {
	case <-allBack:
	case <-time.After(window + 40*time.Second):
		t.Fatalf("only %d handshakes %v after the drop", len(s.arrivals()), window+40*time.Second)
	}
	took := time.Since(dropped)
	stopProbe()

	mu.Lock()
	drawnWaits, attempts := slices.Clone(drawn), slices.Clone(dials)
	mu.Unlock()
	if len(drawnWaits) != clients || len(attempts) < clients {
		t.Fatalf("%d drawn waits and %d dials for %d reconnects", len(drawnWaits), len(attempts), clients)
	}
	busiest, p10, p90 := spread(t, "drawn waits", dropped, drawnWaits, bucket)
	if float64(busiest) > maxShare*clients || p90-p10 < window/2 {
		t.Errorf("the drawn waits are not spread over the %v window", window)
	}
	busiest, p10, p90 = spread(t, "dials", dropped, attempts, bucket)
	spread(t, "server arrivals", dropped, s.arrivals(), bucket)
	t.Logf("all back in %v; longest stall of the process %v", took.Round(time.Millisecond), stall().Round(time.Millisecond))
	// Uniform over the window: p90 − p10 ≈ 0.8 window. A burst: a few ms.
	if p90-p10 < window/2 {
		t.Errorf("p10–p90 of the reconnect dials span %v, want at least %v", p90-p10, window/2)
	}
	switch {
	case float64(busiest) <= maxShare*float64(len(attempts)):
	case stall() > maxStall:
		t.Logf("%d dials in one bucket after a %v stall: burst bound not applied", busiest, stall())
	default:
		t.Errorf("%d of %d reconnect dials in one %v bucket: a burst, not a spread", busiest, len(attempts), bucket)
	}

	started = time.Now()
	forEach(t, clients, func(i int) error { return cs[i].Close() })
	t.Logf("closed in %v", time.Since(started).Round(time.Millisecond))
	shutdown(h)
	s.kill()
	transport.CloseIdleConnections()
	if n := settleGoroutines(baseline + 10); n > baseline+10 {
		t.Errorf("%d goroutines after closing everything, %d before", n, baseline)
	}
}

// stallProbe measures how late a 10 ms ticker runs until stop is called:
// the longest time this process could not schedule a goroutine.
func stallProbe() (stop func(), longest func() time.Duration) {
	const tick = 10 * time.Millisecond
	var worst atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tk.C:
				if late := now.Sub(last) - tick; late > time.Duration(worst.Load()) {
					worst.Store(int64(late))
				}
				last = now
			}
		}
	}()
	return func() { close(done); <-finished }, func() time.Duration { return time.Duration(worst.Load()) }
}

// spread logs how times after t0 fall into buckets and returns the
// busiest bucket's count and the 10th and 90th percentiles.
func spread(t *testing.T, what string, t0 time.Time, times []time.Time, bucket time.Duration) (busiest int, p10, p90 time.Duration) {
	t.Helper()
	if len(times) == 0 {
		return 0, 0, 0
	}
	offsets := make([]time.Duration, len(times))
	hist := map[int]int{}
	for i, at := range times {
		offsets[i] = at.Sub(t0)
		hist[int(offsets[i]/bucket)]++
	}
	slices.Sort(offsets)
	var b strings.Builder
	for i := range int(offsets[len(offsets)-1]/bucket) + 1 {
		busiest = max(busiest, hist[i])
		fmt.Fprintf(&b, " %d", hist[i])
	}
	p10, p90 = offsets[len(offsets)/10], offsets[len(offsets)*9/10]
	t.Logf("%s per %v after the drop:%s; busiest %d of %d (%.1f%%); p10 %v, p90 %v", what, bucket, b.String(),
		busiest, len(times), 100*float64(busiest)/float64(len(times)), p10.Round(time.Millisecond), p90.Round(time.Millisecond))
	return busiest, p10, p90
}

// forEach runs fn(0..n-1) on 32 workers and fails the test on the first
// error.
func forEach(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	const workers = 32
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					errs <- fmt.Errorf("item %d: %w", i, err)
					return
				}
			}
		}()
	}
	func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
