package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

type machine struct {
	cpus               int
	cpuModel           string
	memTotal           string
	kernel             string
	goVersion          string
	loadStart, loadEnd string
}

func machineInfo() machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version(), loadStart: loadAvg()}
	m.cpuModel = procField("/proc/cpuinfo", "model name", ":")
	m.memTotal = procField("/proc/meminfo", "MemTotal", ":")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	return m
}

func procField(file, key, sep string) string {
	f, err := os.Open(file)
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), sep); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

type report struct {
	cfg               config
	machine           machine
	started, finished time.Time
	results           []result
}

func (r *report) find(name string) *result {
	for i := range r.results {
		if r.results[i].Name == name && r.results[i].Err == "" && r.results[i].Skipped == "" {
			return &r.results[i]
		}
	}
	return nil
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (r *report) markdown() string {
	var b strings.Builder
	c, m := r.cfg, r.machine
	fmt.Fprintf(&b, "## Comparison, %d connections per contender\n\n", c.conns)
	fmt.Fprintf(&b, "Run %s, %s. Machine: %d CPUs (%s), %s RAM, Linux %s, %s. Load average %s at the start, %s at the end.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 UTC"), r.finished.Sub(r.started).Round(time.Second),
		m.cpus, m.cpuModel, m.memTotal, m.kernel, m.goVersion, m.loadStart, m.loadEnd)
	fmt.Fprintf(&b, "Command: `%s`", c.command)
	if c.revision != "" {
		fmt.Fprintf(&b, " (wsgate %s)", c.revision)
	}
	b.WriteString("\n\n")
	if c.passes > 1 {
		fmt.Fprintf(&b, "Every figure is the median of %d passes; each pass runs the contenders in a rotated order.\n\n", c.passes)
	}

	bare, naive := r.find("bare"), r.find("naive")

	b.WriteString("### Idle connections and setup\n\n")
	b.WriteString("Per connection, after the handshake garbage is collected and freed pages returned (server-side delta over N). Setup = handshake + JWT verify (+ the first server message where the protocol has one).\n\n")
	b.WriteString("| contender | RSS/conn | × bare | RSS/conn before GC | heap/conn | stack/conn | goroutines/conn | setup conns/s | × bare |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range r.results {
		if row := r.skipRow(res, 9); row != "" {
			b.WriteString(row)
			continue
		}
		var xr, xs string = "—", "—"
		if bare != nil {
			xr, xs = ratio(res.RSS, bare.RSS), ratio(res.SetupRate, bare.SetupRate)
		}
		stack, gor := kib(res.Stack), fmt.Sprintf("%.2f", res.Goroutines)
		if res.Node {
			stack, gor = "—", "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f | %s |\n", r.label(res), kib(res.RSS), xr, kib(res.RSSRaw),
			kib(res.Heap), stack, gor, res.SetupRate, xs)
	}

	fmt.Fprintf(&b, "\n### Fan-out to one room of every connection\n\n")
	fmt.Fprintf(&b, "Saturation: %d broadcasts of a %d-byte padded payload, %d in flight (the next is sent when the one %d before reached every member), so no queue grows without bound. Latency = receive time in the generator − send timestamp in the payload (ms). CPU = CPU time per delivery during saturation, of the server(s) and of the load generator, which shares the two cores. Dropped = connections the server closed during the whole run.\n\n",
		c.satBroadcasts, c.pad, c.window, c.window)
	b.WriteString("| contender | deliveries/s | × naive | server CPU µs/delivery | × naive | generator CPU µs/delivery | p50 | p95 | p99 | delivered | dropped conns |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range r.results {
		if res.Sat == nil {
			if row := r.skipRow(res, 11); row != "" {
				b.WriteString(row)
			}
			continue
		}
		s := res.Sat
		xn, xc := "—", "—"
		if naive != nil && naive.Sat != nil {
			xn, xc = ratio(s.Rate, naive.Sat.Rate), ratio(s.CPUPerDelivery, naive.Sat.CPUPerDelivery)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %.2f | %s | %.2f | %s | %s | %s | %s | %d |\n", r.label(res), s.Rate, xn, s.CPUPerDelivery, xc,
			s.GenCPUPerDelivery, ms(s.P50), ms(s.P95), ms(s.P99), pct(s), res.Disconnected)
	}
	fmt.Fprintf(&b, "\n### Fan-out at fixed offered rates\n\n")
	fmt.Fprintf(&b, "One broadcast every N/rate seconds for %v, on a fixed schedule; latency counts from the scheduled time, so falling behind shows (ms).\n\n", c.rateDur)
	b.WriteString("| contender | offered deliveries/s | delivered | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range r.results {
		for _, f := range res.Fixed {
			fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %s |\n", r.label(res), f.Offered, pct(f), ms(f.P50), ms(f.P95), ms(f.P99), ms(f.Max))
		}
	}

	b.WriteString("\n### Request → ack round trip\n\n")
	fmt.Fprintf(&b, "%d connections, %d requests each, one at a time, %v apart (ms).\n\n", c.rttConns, c.rttPerConn, c.rttInterval)
	b.WriteString("| contender | p50 | p95 | p99 | max | samples | timeouts |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range r.results {
		if res.RTT == nil {
			continue
		}
		t := res.RTT
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %d |\n", r.label(res), ms(t.P50), ms(t.P95), ms(t.P99), ms(t.Max), t.Samples, t.Timeouts)
	}

	r.pollingMarkdown(&b)

	b.WriteString("\n### Targets (docs: BRIEF.md, performance)\n\n")
	r.targets(&b, bare, naive)
	r.socketioTargets(&b)
	return b.String()
}

func pct(f *fanout) string {
	return fmt.Sprintf("%.1f%%", 100*float64(f.Delivered)/float64(max(f.Expected, 1)))
}

func (r *report) label(res result) string {
	l := res.Name
	if res.Nodes > 1 {
		l = fmt.Sprintf("%s (%d nodes)", res.Name, res.Nodes)
	}
	return l + passesNote(res, r.cfg.passes)
}

func (r *report) skipRow(res result, cols int) string {
	why := res.Skipped
	if res.Err != "" {
		why = "failed: " + res.Err
	}
	if why == "" {
		return ""
	}
	return fmt.Sprintf("| %s | %s |%s\n", r.label(res), why, strings.Repeat(" |", cols-2))
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// socketioTargets compares wsgate's Socket.IO mode with Node's Socket.IO
// server and with wsgate's native protocol, where those rows ran.
func (r *report) socketioTargets(b *strings.Builder) {
	ws, nd, w := r.find("wsgate-socketio"), r.find("socketio-node"), r.find("wsgate")
	if ws != nil && nd != nil {
		fmt.Fprintf(b, "- Socket.IO: idle memory below Node's: %s vs %s (%.2f×) — %s\n", kib(ws.RSS), kib(nd.RSS), ws.RSS/nd.RSS, mark(ws.RSS < nd.RSS))
		if ws.Sat != nil && nd.Sat != nil {
			fmt.Fprintf(b, "- Socket.IO: fan-out ≥ 5× Node's: %.2f× (%.0f vs %.0f deliveries/s) — %s\n", ws.Sat.Rate/nd.Sat.Rate, ws.Sat.Rate, nd.Sat.Rate,
				mark(ws.Sat.Rate >= 5*nd.Sat.Rate))
		}
	}
	if ws != nil && w != nil {
		fmt.Fprintf(b, "- Socket.IO: idle memory within 1.2× of native: %.2f× (%s vs %s) — %s\n", ws.RSS/w.RSS, kib(ws.RSS), kib(w.RSS), mark(ws.RSS <= 1.2*w.RSS))
		if ws.Sat != nil && w.Sat != nil {
			fmt.Fprintf(b, "- Socket.IO: fan-out within 1.2× of native: %.2f× native (%.0f vs %.0f deliveries/s) — %s\n", ws.Sat.Rate/w.Sat.Rate, ws.Sat.Rate, w.Sat.Rate,
				mark(1.2*ws.Sat.Rate >= w.Sat.Rate))
		}
	}
	if ws == nil && nd != nil && w != nil && w.Sat != nil && nd.Sat != nil {
		fmt.Fprintf(b, "- (wsgate-socketio did not run) wsgate native against Node's Socket.IO: idle memory %.2f×, fan-out %.2f×\n", w.RSS/nd.RSS, w.Sat.Rate/nd.Sat.Rate)
	}
}

func (r *report) targets(b *strings.Builder, bare, naive *result) {
	w, cf, ml := r.find("wsgate"), r.find("centrifuge"), r.find("melody")
	if w == nil {
		b.WriteString("wsgate did not run.\n")
		return
	}
	if bare != nil {
		fmt.Fprintf(b, "- Idle memory ≤ 1.15× bare: %.3f× (%s vs %s) — %s\n", w.RSS/bare.RSS, kib(w.RSS), kib(bare.RSS), mark(w.RSS <= 1.15*bare.RSS))
	}
	if cf != nil {
		fmt.Fprintf(b, "- Idle memory below Centrifuge: %s vs %s — %s\n", kib(w.RSS), kib(cf.RSS), mark(w.RSS < cf.RSS))
	}
	if w.Sat == nil {
		return
	}
	if naive != nil && naive.Sat != nil {
		fmt.Fprintf(b, "- Fan-out ≥ 3× naive: %.2f× (%.0f vs %.0f deliveries/s) — %s\n", w.Sat.Rate/naive.Sat.Rate, w.Sat.Rate, naive.Sat.Rate, mark(w.Sat.Rate >= 3*naive.Sat.Rate))
	}
	for _, p := range []*result{cf, ml} {
		if p != nil && p.Sat != nil {
			fmt.Fprintf(b, "- Fan-out ahead of %s: %.0f vs %.0f deliveries/s — %s\n", p.Name, w.Sat.Rate, p.Sat.Rate, mark(w.Sat.Rate > p.Sat.Rate))
		}
	}
	for _, f := range w.Fixed {
		fmt.Fprintf(b, "- p99 < 50 ms at %.0f deliveries/s to a %d-member room: %s ms, %s delivered — %s\n", f.Offered, w.Conns, ms(f.P99),
			pct(f), mark(f.P99 < 50*time.Millisecond && f.Delivered == f.Expected))
	}
	if wh := r.find("wsgate-history"); wh != nil && wh.Sat != nil {
		x := wh.Sat.Rate / w.Sat.Rate
		fmt.Fprintf(b, "- Fan-out with history on ≥ 0.8× off: %.2f× (%.0f vs %.0f deliveries/s) — %s\n", x, wh.Sat.Rate, w.Sat.Rate, mark(x >= 0.8))
	}
}
