package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connect opens cfg.conns connections spread over the servers.
func (g *gen) connect(servers []*server, d *dialect, s *sink, pl *poller) (clients []*client, failures int, firstErr error, took time.Duration) {
	all := make([]*client, g.cfg.conns)
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range g.cfg.dialConc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(all) {
					return
				}
				c, err := dial(servers[i%len(servers)].addr, d, g.tokens[i], s, pl, 10*time.Second)
				if err != nil {
					mu.Lock()
					failures++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				all[i] = c
			}
		})
	}
	wg.Wait()
	took = time.Since(start)
	for _, c := range all {
		if c != nil {
			clients = append(clients, c)
		}
	}
	return clients, failures, firstErr, took
}

// selfCPU is the generator's user + system CPU time in nanoseconds.
func selfCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func sumStats(servers []*server, gc bool) (serverStats, error) {
	var sum serverStats
	for _, s := range servers {
		st, err := s.stats(gc)
		if err != nil {
			return sum, err
		}
		sum = sum.add(st)
	}
	return sum, nil
}

func waitConns(servers []*server, want int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		st, err := sumStats(servers, false)
		if err != nil {
			return err
		}
		if st.Conns >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("servers report %d of %d connections after %v", st.Conns, want, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// windowed sends up to k broadcasts back to back, keeping w in flight: the
// next one is sent once the one w before it reached every member (or the
// step timeout passed). It stops early at until, when set. This is the
// sustainable delivery rate, without letting any server queue grow without
// bound.
func (g *gen) windowed(srv *server, s *sink, members, k, w int, until time.Time) (*fanout, error) {
	ph := newPhase(g.nextSeq, k, members)
	g.nextSeq += int64(k)
	s.phase.Store(ph)
	start := time.Now()
	sent := 0
	for i := range k {
		if !until.IsZero() && time.Now().After(until) {
			break
		}
		if i >= w {
			ph.wait(ph.base+int64(i-w), g.cfg.stepTimeout)
		}
		if err := srv.broadcast(ph.base+int64(i), time.Now().UnixNano(), g.cfg.pad); err != nil {
			return nil, err
		}
		sent++
	}
	for j := max(0, sent-w); j < sent; j++ {
		ph.wait(ph.base+int64(j), g.cfg.stepTimeout)
	}
	return summarize(ph, sent, members, start), nil
}

// openLoop offers rate deliveries per second for cfg.rateDur: one
// broadcast every members/rate seconds on a fixed schedule. Each carries its
// scheduled time, so a server (or generator) that falls behind shows it in
// the latency instead of hiding it.
func (g *gen) openLoop(srv *server, s *sink, members int, rate float64) (*fanout, error) {
	perSec := rate / float64(members)
	interval := time.Duration(float64(time.Second) / perSec)
	k := max(1, int(g.cfg.rateDur/interval))
	ph := newPhase(g.nextSeq, k, members)
	g.nextSeq += int64(k)
	s.phase.Store(ph)
	start := time.Now()
	for i := range k {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		if err := srv.broadcast(ph.base+int64(i), at.UnixNano(), g.cfg.pad); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(2 * g.cfg.stepTimeout)
	for j := range k {
		ph.wait(ph.base+int64(j), max(time.Until(deadline), time.Millisecond))
	}
	f := summarize(ph, k, members, start)
	f.Offered = rate
	return f, nil
}

func summarize(ph *phase, sent, members int, start time.Time) *fanout {
	f := &fanout{
		Broadcasts: sent,
		Expected:   int64(sent) * int64(members),
		Delivered:  ph.n.Load(),
		P50:        ph.hist.Quantile(0.50),
		P95:        ph.hist.Quantile(0.95),
		P99:        ph.hist.Quantile(0.99),
		Max:        ph.hist.Max(),
	}
	if last := ph.last.Load(); last > 0 {
		f.Seconds = time.Duration(last - start.UnixNano()).Seconds()
		f.Rate = float64(f.Delivered) / f.Seconds
	}
	return f
}

// rtt has each client send cfg.rttPerConn echo requests, one at a time,
// cfg.rttInterval apart, and records request-to-answer times.
func (g *gen) rtt(clients []*client, d *dialect) *latency {
	var h hist
	var timeouts atomic.Int64
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			// Spread the first requests over one interval.
			next := time.Now().Add(g.cfg.rttInterval * time.Duration(i) / time.Duration(len(clients)))
			for j := range g.cfg.rttPerConn {
				time.Sleep(time.Until(next))
				next = next.Add(g.cfg.rttInterval)
				ts := time.Now().UnixNano()
				if c.write(opText, d.echo(uint64(j+1), ts)) != nil {
					timeouts.Add(1)
					return
				}
				t := time.NewTimer(5 * time.Second)
				select {
				case got := <-c.echoC:
					h.Record(time.Duration(time.Now().UnixNano() - got))
				case <-t.C:
					timeouts.Add(1)
				}
				t.Stop()
			}
		})
	}
	wg.Wait()
	return &latency{
		Samples: int(h.Count()), Timeouts: int(timeouts.Load()),
		P50: h.Quantile(0.5), P95: h.Quantile(0.95), P99: h.Quantile(0.99), Max: h.Max(),
	}
}
