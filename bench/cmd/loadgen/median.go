package main

import (
	"fmt"
	"slices"
	"time"
)

// median folds the passes of one contender into one row: the median of
// each figure over the passes that completed. A row fails only when every
// pass failed; Passes says how many counted.
func median(rs []result) result {
	var ok []result
	for _, r := range rs {
		if r.Err == "" && r.Skipped == "" {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return rs[0]
	}
	out := ok[0]
	out.Passes, out.FailedPasses = len(ok), len(rs)-len(ok)
	f := func(get func(result) float64) float64 { return medianOf(ok, get) }
	out.SetupRate = f(func(r result) float64 { return r.SetupRate })
	out.RSS = f(func(r result) float64 { return r.RSS })
	out.RSSRaw = f(func(r result) float64 { return r.RSSRaw })
	out.Heap = f(func(r result) float64 { return r.Heap })
	out.Stack = f(func(r result) float64 { return r.Stack })
	out.Goroutines = f(func(r result) float64 { return r.Goroutines })
	for _, r := range ok {
		out.SetupFailures = max(out.SetupFailures, r.SetupFailures)
		out.Disconnected = max(out.Disconnected, r.Disconnected)
	}
	out.Polling = medianPolling(ok)
	if out.Sat != nil {
		out.Sat = medianFanout(ok, func(r result) *fanout { return r.Sat })
	}
	out.Fixed = nil
	for i := range ok[0].Fixed {
		out.Fixed = append(out.Fixed, medianFanout(ok, func(r result) *fanout {
			if i < len(r.Fixed) {
				return r.Fixed[i]
			}
			return nil
		}))
	}
	if out.RTT != nil {
		var ls []*latency
		for _, r := range ok {
			if r.RTT != nil {
				ls = append(ls, r.RTT)
			}
		}
		g := func(get func(*latency) float64) float64 { return medianOf(ls, get) }
		d := func(get func(*latency) time.Duration) time.Duration {
			return time.Duration(g(func(l *latency) float64 { return float64(get(l)) }))
		}
		out.RTT = &latency{
			Samples:  int(g(func(l *latency) float64 { return float64(l.Samples) })),
			Timeouts: int(g(func(l *latency) float64 { return float64(l.Timeouts) })),
			P50:      d(func(l *latency) time.Duration { return l.P50 }),
			P95:      d(func(l *latency) time.Duration { return l.P95 }),
			P99:      d(func(l *latency) time.Duration { return l.P99 }),
			Max:      d(func(l *latency) time.Duration { return l.Max }),
		}
	}
	return out
}

func medianFanout(rs []result, pick func(result) *fanout) *fanout {
	var fs []*fanout
	for _, r := range rs {
		if f := pick(r); f != nil {
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		return nil
	}
	g := func(get func(*fanout) float64) float64 { return medianOf(fs, get) }
	d := func(get func(*fanout) time.Duration) time.Duration {
		return time.Duration(g(func(f *fanout) float64 { return float64(get(f)) }))
	}
	return &fanout{
		Broadcasts:        fs[0].Broadcasts,
		Offered:           fs[0].Offered,
		Expected:          int64(g(func(f *fanout) float64 { return float64(f.Expected) })),
		Delivered:         int64(g(func(f *fanout) float64 { return float64(f.Delivered) })),
		Seconds:           g(func(f *fanout) float64 { return f.Seconds }),
		Rate:              g(func(f *fanout) float64 { return f.Rate }),
		CPUPerDelivery:    g(func(f *fanout) float64 { return f.CPUPerDelivery }),
		GenCPUPerDelivery: g(func(f *fanout) float64 { return f.GenCPUPerDelivery }),
		P50:               d(func(f *fanout) time.Duration { return f.P50 }),
		P95:               d(func(f *fanout) time.Duration { return f.P95 }),
		P99:               d(func(f *fanout) time.Duration { return f.P99 }),
		Max:               d(func(f *fanout) time.Duration { return f.Max }),
	}
}

// medianOf is the median of get over xs (the mean of the middle two for an
// even count).
func medianOf[T any](xs []T, get func(T) float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = get(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// passesNote says how many passes a row stands for, when more than one ran.
func passesNote(r result, passes int) string {
	if passes <= 1 || r.FailedPasses == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d passes)", r.Passes, passes)
}
