package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// scrape returns the /metrics exposition.
func (e *testEnv) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestMetricsEndpointFollowsConnections(t *testing.T) {
	e := startServer(t, nil)
	// What the alerting rules of deploy/prometheus read besides.
	waitMetric(t, e, "wsgate_ready 1")
	if !strings.Contains(e.scrape(t), "\ngo_memstats_heap_alloc_bytes ") {
		t.Fatal("/metrics has no go_memstats_heap_alloc_bytes for the heap alert")
	}
	c := e.connect(t, "alice")
	waitMetric(t, e, "wsgate_connections 1")
	c.ws.CloseNow()
	waitMetric(t, e, "wsgate_connections 0")
	waitMetric(t, e, `wsgate_disconnects_total{reason="connection_lost"} 1`)

	h := http.Header{"Origin": {"https://evil.example"}}
	if _, resp, err := e.dial(t, h); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin not refused: %v", err)
	}
	waitMetric(t, e, `wsgate_handshake_refusals_total{reason="origin_rejected"} 1`)
}

func waitMetric(t *testing.T, e *testEnv, line string) {
	t.Helper()
	deadline := time.Now().Add(readTimeout)
	for !strings.Contains(e.scrape(t), line+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
