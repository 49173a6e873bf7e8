package testutil

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// RunCommand runs an example's command (run, given a context that ends
// with the test and the logger its JSON log goes to) until the test ends,
// and returns the address of its "listening" log line and its log. The
// test fails when run returns an error, or is still running stopWithin
// after its context was cancelled; listenWithin bounds the wait for the
// listening line.
func RunCommand(t testing.TB, run func(ctx context.Context, log *slog.Logger) error, listenWithin, stopWithin time.Duration) (addr string, logs *SyncBuffer) {
	t.Helper()
	logs = &SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error // written before done is closed
	go func() {
		defer close(done)
		runErr = run(ctx, slog.New(slog.NewJSONHandler(logs, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if runErr != nil {
				t.Errorf("run: %v", runErr)
			}
		case <-time.After(stopWithin):
			t.Errorf("run still serving %s after it was cancelled", stopWithin)
		}
	})
	EventuallyNil(t, listenWithin, "the listening log line", func() error {
		select {
		case <-done:
			return fmt.Errorf("run returned before listening: %v", runErr)
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr = line.Addr
				return nil
			}
		}
		return errors.New("not yet")
	})
	return addr, logs
}
