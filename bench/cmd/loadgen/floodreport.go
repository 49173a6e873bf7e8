package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// floodReport is the Markdown section "Floods" of BENCHMARKS.md.
type floodReport struct {
	cfg               config
	fc                floodConfig
	machine           machine
	started, finished time.Time
	rows              []floodRow
	loads             loadLog
}

func (r *floodReport) markdown() string {
	var b strings.Builder
	c, m, fc := r.cfg, r.machine, r.fc
	b.WriteString("## Floods\n\n")
	fmt.Fprintf(&b, "Run %s, %s, on %d CPUs (%s), %s RAM, Linux %s, %s. %s\n\n",
		r.started.UTC().Format("2006-01-02 15:04 UTC"), r.finished.Sub(r.started).Round(time.Second),
		m.cpus, m.cpuModel, m.memTotal, m.kernel, m.goVersion, r.loadSummary())
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", c.command)
	if c.revision != "" {
		fmt.Fprintf(&b, "wsgate at %s.\n\n", c.revision)
	}
	b.WriteString("#### One flooding connection\n\n")
	after := "keeps flooding, as an attacker would, until the server ends the TCP connection"
	if fc.polite {
		after = "stops and closes its side at the server's close frame"
	}
	fmt.Fprintf(&b, "One authenticated connection, alone on the server, writes one kind of hand-written frame "+
		"as fast as the socket takes it (%d KiB per write, at most %v or %s frames) and reads whatever the server sends; "+
		"it %s. Times count from the first flood frame. Server CPU and allocated bytes run from just before the flood "+
		"until the server no longer counts the connection (for a flood never closed: %v after its last frame), so "+
		"whatever the server reads after its close frame counts. Heap is `HeapAlloc`: before and after are read after a "+
		"GC with no connection open; the peak is the largest sample (every 10 ms, uncollected garbage included).\n\n",
		floodBatch>>10, fc.time, thousands(fc.frames), after, fc.grace)
	b.WriteString("| contender | flood | frames sent | close code | close frame after | TCP connection ended after | server CPU | allocated | heap before → peak → after | goroutines before → peak → after |\n")
	b.WriteString("|---|---|---:|---|---:|---:|---:|---:|---|---|\n")
	for _, row := range r.rows {
		if why := row.why(); why != "" && len(row.Singles) == 0 {
			fmt.Fprintf(&b, "| %s | %s | | | | | | | | |\n", row.Name, why)
			continue
		}
		for _, s := range row.Singles {
			b.WriteString(singleLine(row.Name, s))
		}
	}
	b.WriteString("\n#### A legitimate client during floods\n\n")
	fmt.Fprintf(&b, "%s requests, one at a time, at most one every %v, taking turns on %d authenticated connections; "+
		"request → ack latency in ms. During each flood, %d connections flood as above, each reconnecting as soon as "+
		"it is over, for as long as the requests last; \"closed by the server\" counts close frames. Server and generator CPU are in cores (CPU time / wall time) "+
		"over the phase; the generator (flooders and legitimate client) shares the two cores with the server.\n\n",
		thousands(int64(fc.requests)), fc.loadTime/time.Duration(fc.requests), fc.legit, fc.flooders)
	b.WriteString("| contender | flood | p50 | p99 | max | acks | timeouts | flood connections | closed by the server | flood frames | server CPU | generator CPU | peak heap | peak goroutines |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for _, row := range r.rows {
		if len(row.Loads) == 0 {
			why := row.why()
			if why == "" {
				why = "no request to answer"
			}
			fmt.Fprintf(&b, "| %s | %s | | | | | | | | | | | | |\n", row.Name, why)
			continue
		}
		for _, l := range row.Loads {
			b.WriteString(loadLine(row.Name, l))
		}
		if row.Err != "" {
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | | | | | | | | |\n", row.Name, row.Err)
		}
	}
	return b.String()
}

func (row floodRow) why() string {
	switch {
	case row.Skipped != "":
		return row.Skipped
	case row.Err != "":
		return "failed: " + row.Err
	}
	return ""
}

func singleLine(name string, s floodSingle) string {
	if s.Err != "" {
		return fmt.Sprintf("| %s | %s | failed: %s | | | | | | | |\n", name, s.Kind, s.Err)
	}
	code, closeAfter, ended := "none", "—", "—"
	if s.Out.closed {
		code, closeAfter = closeName(s.Out.code), msOrS(s.Out.took)
	}
	if s.Out.dropped {
		ended = msOrS(s.Out.gone)
	} else {
		ended = fmt.Sprintf("no (flooded %.1f s)", s.Out.sent.Seconds())
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s → %s → %s | %d → %d → %d |\n",
		name, s.Kind, thousands(s.Out.frames), code, closeAfter, ended, msOrS(s.CPU), mib(s.Alloc),
		mib(s.Before.HeapAlloc), mib(s.Peak.heap), mib(s.After.HeapAlloc),
		s.Before.Goroutines, s.Peak.goroutines, s.After.Goroutines)
}

func loadLine(name string, l floodLoad) string {
	kind := "none"
	if l.Kind != "" {
		kind = l.Kind
	}
	if l.Err != "" {
		return fmt.Sprintf("| %s | %s | failed: %s | | | | | | | | | | | |\n", name, kind, l.Err)
	}
	conns, closed, frames := "—", "—", "—"
	if l.Kind != "" {
		conns, frames = thousands(l.Flood.Conns), thousands(l.Flood.Frames)
		closed = closedCodes(l.Flood)
		if l.Flood.DialFailures > 0 {
			conns += fmt.Sprintf(" (%d refused)", l.Flood.DialFailures)
		}
	}
	t := l.RTT
	timeouts := strconv.Itoa(t.Timeouts)
	if l.LegitLost > 0 {
		timeouts += fmt.Sprintf(" (%d connections lost)", l.LegitLost)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %d | %s | %s | %s | %s | %.2f | %.2f | %s | %d |\n",
		name, kind, ms(t.P50), ms(t.P99), ms(t.Max), t.Samples, timeouts, conns, closed, frames,
		l.ServerCores, l.GenCores, mib(l.Peak.heap), l.Peak.goroutines)
}

// closedCodes is e.g. "2,310 (1008)" or "0".
func closedCodes(f flooderCounts) string {
	if f.Closed == 0 {
		return "0"
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(f.Codes)) {
		s := closeName(code)
		if len(f.Codes) > 1 {
			s = fmt.Sprintf("%s× %s", thousands(f.Codes[code]), s)
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("%s (%s)", thousands(f.Closed), strings.Join(parts, ", "))
}

func closeName(code int) string {
	if code == 0 {
		return "no close frame"
	}
	return strconv.Itoa(code)
}

// loadSummary says what the machine's 1-minute load average was during the run.
func (r *floodReport) loadSummary() string {
	r.loads.mu.Lock()
	defer r.loads.mu.Unlock()
	var lo, hi float64
	for i, s := range r.loads.one {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		if i == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	return fmt.Sprintf("Load average (1, 5, 15 min) %s at the start and %s at the end; 1-minute %.2f–%.2f at the start of the phases (%d readings).",
		r.machine.loadStart, loadAvg(), lo, hi, len(r.loads.one))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// msOrS prints a duration in ms below 10 s, in s above, with about two
// significant digits.
func msOrS(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", v)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// thousands prints n with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
