package main

import (
	"fmt"
	"log"
	"sync"
	"time"
)

// latencyPhases measures the legitimate client's request → ack latency,
// first with no flood, then during each kind of flood. The legitimate
// connections stay open across the phases.
func latencyPhases(srv *server, d *dialect, kinds []floodKind, fc floodConfig, lg *loadLog) ([]floodLoad, string) {
	s := &sink{}
	pl, err := newPoller()
	if err != nil {
		return nil, fmt.Sprintf("epoll: %v", err)
	}
	var legit []*client
	defer func() {
		pl.stop()
		for _, c := range legit {
			c.close()
		}
	}()
	for i := range fc.legit {
		c, err := dial(srv.addr, d, mustMint(fmt.Sprintf("legit-%d", i)), s, pl, 10*time.Second)
		if err != nil {
			return nil, fmt.Sprintf("legitimate connection %d: %v", i, err)
		}
		legit = append(legit, c)
	}
	flooders := make([]string, fc.flooders)
	for i := range flooders {
		flooders[i] = mustMint(fmt.Sprintf("flooder-%d", i))
	}
	var loads []floodLoad
	for i := -1; i < len(kinds); i++ {
		var k *floodKind
		if i >= 0 {
			k = &kinds[i]
		}
		lg.note()
		l := loadPhase(srv, d, k, legit, flooders, fc, s)
		log.Printf("requests during %s: p50 %v p99 %v max %v, %d acks, %d timeouts; %d flood connections, %d closed; server %.2f cores",
			l.label(), l.RTT.P50, l.RTT.P99, l.RTT.Max, l.RTT.Samples, l.RTT.Timeouts, l.Flood.Conns, l.Flood.Closed, l.ServerCores)
		loads = append(loads, l)
		if err := waitConnsAtMost(srv, len(legit), 10*time.Second); err != nil {
			return loads, err.Error()
		}
	}
	return loads, ""
}

func (l floodLoad) label() string {
	if l.Kind == "" {
		return "no flood"
	}
	return l.Kind
}

// loadPhase sends fc.requests legitimate requests while fc.flooders
// connections flood srv with k (none when k is nil), each reconnecting as
// soon as it is closed.
func loadPhase(srv *server, d *dialect, k *floodKind, legit []*client, tokens []string, fc floodConfig, s *sink) (r floodLoad) {
	var st flooderStats
	stop := make(chan struct{})
	// A hard bound for the flooders, well past the phase's normal end.
	until := time.Now().Add(3*fc.loadTime + 10*time.Second)
	var wg sync.WaitGroup
	if k != nil {
		r.Kind = k.name
		started := make(chan struct{}, len(tokens))
		for _, tok := range tokens {
			wg.Go(func() { floodAgain(srv.addr, d, tok, *k, fc, until, stop, started, &st) })
		}
		// Measure once every flooder is at work (or has had its chance).
		timeout := time.After(10 * time.Second)
	wait:
		for range tokens {
			select {
			case <-started:
			case <-timeout:
				break wait
			}
		}
	}
	lost0 := s.closed.Load()
	s0, err0 := srv.stats(false)
	g0, t0 := selfCPU(), time.Now()
	smp := startSampler(srv, 50*time.Millisecond)
	r.RTT = legitRequests(legit, d, fc.requests, fc.loadTime/time.Duration(fc.requests), t0.Add(3*fc.loadTime))
	s1, err1 := srv.stats(false)
	g1, wall := selfCPU(), time.Since(t0)
	r.Peak = smp.finish()
	close(stop)
	wg.Wait()
	r.Flood = st.counts()
	r.LegitLost = s.closed.Load() - lost0
	if err := firstErr(err0, err1); err != nil {
		r.Err = err.Error()
		return r
	}
	r.ServerCores = float64(s1.CPUNanos-s0.CPUNanos) / float64(wall)
	r.GenCores = float64(g1-g0) / float64(wall)
	return r
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// maxReconnects bounds one flooder's connections in one phase.
const maxReconnects = 100_000

// floodAgain floods from one connection after another, each opened as soon
// as the previous one is closed, until stop or until. It signals started
// once its first connection is established.
func floodAgain(addr string, d *dialect, tok string, k floodKind, fc floodConfig, until time.Time, stop <-chan struct{}, started chan<- struct{}, st *flooderStats) {
	signalled := false
	for range maxReconnects {
		if !time.Now().Before(until) {
			return
		}
		select {
		case <-stop:
			return
		default:
		}
		conn, err := dialFlood(addr, d, tok, 5*time.Second)
		if err != nil {
			st.dialFailures.Add(1)
			// Back off a little rather than spin on a refusing server.
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		st.conns.Add(1)
		if !signalled {
			started <- struct{}{}
			signalled = true
		}
		st.record(conn.flood(k, fc.limits(until), stop))
	}
}

// legitRequests sends n echo requests, one at a time, taking turns on the
// clients, at most one every interval, until deadline; each waits up to
// 5 s for its answer.
func legitRequests(clients []*client, d *dialect, n int, interval time.Duration, deadline time.Time) *latency {
	var h hist
	timeouts := 0
	next := time.Now()
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		time.Sleep(time.Until(next))
		// Behind schedule, the next request goes at once, not in a burst.
		next = maxTime(next.Add(interval), time.Now())
		c := clients[i%len(clients)]
		sent := time.Now()
		ts := sent.UnixNano()
		if c.write(opText, d.echo(uint64(i/len(clients)+1), ts)) != nil || !awaitEcho(c, ts, 5*time.Second) {
			timeouts++
			continue
		}
		h.Record(time.Since(sent))
	}
	return &latency{
		Samples: int(h.Count()), Timeouts: timeouts,
		P50: h.Quantile(0.5), P95: h.Quantile(0.95), P99: h.Quantile(0.99), Max: h.Max(),
	}
}

// awaitEcho waits for the answer carrying ts, skipping late answers to
// earlier requests that timed out.
func awaitEcho(c *client, ts int64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case got := <-c.echoC:
			if got == ts {
				return true
			}
		case <-t.C:
			return false
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
