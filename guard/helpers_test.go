package guard_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// refusal is the JSON body every guard refusal carries.
type refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// assertRefusal checks status, content type, Retry-After and the JSON body of
// a refusal. wantRetry "" means the header must be absent.
func assertRefusal(t *testing.T, status int, h http.Header, body io.Reader, wantStatus int, wantCode, wantRetry string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status = %d, want %d", status, wantStatus)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if got := h.Get("Retry-After"); got != wantRetry {
		t.Errorf("Retry-After = %q, want %q", got, wantRetry)
	}
	var b refusal
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("body is not the refusal JSON: %v", err)
	}
	if b.Code != wantCode || b.Message == "" {
		t.Errorf("body = %+v, want code %q and a message", b, wantCode)
	}
}

// logBuffer is a concurrency-safe sink for a JSON slog handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes every JSON log line written so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// assertSecurityLine checks that the only log line is a Warn refusal with
// the wanted attributes and that no secret leaked into the log.
func assertSecurityLine(t *testing.T, logs *logBuffer, want map[string]string, secrets ...string) {
	t.Helper()
	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), logs)
	}
	l := lines[0]
	if l["level"] != "WARN" {
		t.Errorf("level = %v, want WARN", l["level"])
	}
	for k, v := range want {
		if got, _ := l[k].(string); got != v {
			t.Errorf("log %s = %q, want %q", k, got, v)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log contains %q:\n%s", s, logs)
		}
	}
}

// fakeClock is a settable clock for Throttle tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// waitFor polls cond until it holds or the deadline passes. It is for state
// that changes on the server side after a client has gone, where there is no
// channel to wait on.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, within, what, cond)
}
