package main

import (
	"fmt"
	"strings"
)

// medianPolling folds the passes' long-polling rows into one: the median
// of each figure over the passes that measured it.
func medianPolling(rs []result) *pollResult {
	var ps []*pollResult
	for _, r := range rs {
		if r.Polling != nil {
			ps = append(ps, r.Polling)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	g := func(get func(*pollResult) float64) float64 { return medianOf(ps, get) }
	out := &pollResult{
		Sessions:  int(g(func(p *pollResult) float64 { return float64(p.Sessions) })),
		SetupRate: g(func(p *pollResult) float64 { return p.SetupRate }),
		RSS:       g(func(p *pollResult) float64 { return p.RSS }),
		RSSRaw:    g(func(p *pollResult) float64 { return p.RSSRaw }),
		Heap:      g(func(p *pollResult) float64 { return p.Heap }),
		Closed:    int64(g(func(p *pollResult) float64 { return float64(p.Closed) })),
	}
	byPass := make([]result, len(ps))
	for i, p := range ps {
		byPass[i] = result{Sat: p.One, Fixed: []*fanout{p.Ten}}
	}
	out.One = medianFanout(byPass, func(r result) *fanout { return r.Sat })
	out.Ten = medianFanout(byPass, func(r result) *fanout { return r.Fixed[0] })
	return out
}

// pollingMarkdown is the report's long-polling section, when a row has one.
func (r *report) pollingMarkdown(b *strings.Builder) {
	var rows []result
	for _, res := range r.results {
		if res.Polling != nil || res.PollingErr != "" {
			rows = append(rows, res)
		}
	}
	if len(rows) == 0 {
		return
	}
	c := r.cfg
	fmt.Fprintf(b, "\n### Long-polling sessions (Socket.IO)\n\n")
	fmt.Fprintf(b, "%d Engine.IO sessions on the polling transport, in a server process of their own, each connected to `/` and holding a GET between messages as engine.io-client does. Memory per session after GC once every GET is held (server-side delta over N). Then %d broadcasts to every session, one in flight (each message a GET response of its own, then a new GET) and ten in flight (what queued meanwhile goes out in one response): server and generator CPU per delivered message, latency from the send timestamp (ms).\n\n",
		c.polling, c.pollBroadcasts)
	b.WriteString("| contender | sessions | RSS/session | RSS/session before GC | heap/session | setup sessions/s | in flight | deliveries/s | server CPU µs/message | generator CPU µs/message | p50 | p99 | delivered | ended sessions |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range rows {
		p := res.Polling
		if p == nil {
			fmt.Fprintf(b, "| %s | failed: %s |%s\n", r.label(res), res.PollingErr, strings.Repeat(" |", 12))
			continue
		}
		for i, f := range []*fanout{p.One, p.Ten} {
			if f == nil {
				continue
			}
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %.0f | %d | %.0f | %.2f | %.2f | %s | %s | %s | %d |\n",
				r.label(res), p.Sessions, kib(p.RSS), kib(p.RSSRaw), kib(p.Heap), p.SetupRate, []int{1, 10}[i],
				f.Rate, f.CPUPerDelivery, f.GenCPUPerDelivery, ms(f.P50), ms(f.P99), pct(f), p.Closed)
		}
	}
}
