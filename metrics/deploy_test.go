package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wsgate/wsgate/metrics"
)

// exported returns every metric name a node exposes: the collectors of
// package metrics, each touched once so that vectors have a series, and
// the Go collector the heap alert reads.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchReadiness(func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(collectors.NewGoCollector())
	m.Refused("origin_rejected")
	m.AuthFailed("invalid")
	m.Connected()
	m.Disconnected("client_closed", time.Second)
	m.MessageIn("ping", "rate_limited")
	m.HandlerDone("ping", time.Millisecond)
	m.Delivered(1)
	m.Dropped()
	m.SlowConsumer()
	m.Published("room", time.Millisecond, errors.New("down"))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\b(?:wsgate|go)_[a-z_]+\b`)

// The alerting rules and the dashboard may only read metrics that a node
// exports: a renamed metric must fail here, not silently in production.
func TestDeployFilesUseExportedMetrics(t *testing.T) {
	names := exported(t)
	rules, err := os.ReadFile("../deploy/prometheus/wsgate.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, line := range strings.Split(string(rules), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
			exprs = append(exprs, e)
		}
	}
	if len(exprs) < 7 {
		t.Fatalf("found %d alert expressions, want the audit's four and three more", len(exprs))
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile("../deploy/grafana/wsgate.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, e := range exprs {
		found := metricName.FindAllString(e, -1)
		if len(found) == 0 {
			t.Errorf("expression %q reads no metric", e)
		}
		for _, n := range found {
			if !names[n] {
				t.Errorf("expression %q reads %s, which no node exports", e, n)
			}
		}
	}
}
