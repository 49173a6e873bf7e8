package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// The fixture refuses to start without a usable secret, and otherwise
// serves Socket.IO handshakes until its context ends.
func TestRun(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if err := run(context.Background(), nil, func(string) string { return "short" }, io.Discard, log); err == nil {
		t.Fatal("a short secret was accepted")
	}
	secret := func(string) string { return strings.Repeat("s", 32) }
	if err := run(context.Background(), []string{"-redis", "127.0.0.1:1"}, secret, io.Discard, log); err == nil {
		t.Fatal("started without the Redis of -redis")
	}
	out := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, secret, out, log) }()
	var url string
	testutil.Eventually(t, 5*time.Second, "listening", func() bool {
		url, _ = strings.CutPrefix(strings.TrimSpace(out.String()), "listening on ")
		return url != "" && url != strings.TrimSpace(out.String())
	})
	req, err := http.NewRequest(http.MethodGet, url+"/socket.io/?EIO=4&transport=polling", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", url)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), `0{"sid":`) {
		t.Fatalf("handshake: %d %s", resp.StatusCode, body)
	}
	// The client leaves, as socket.io-client does on close: otherwise the
	// shutdown waits for its next GET to tell it.
	sid := strings.TrimSuffix(strings.SplitN(string(body), `"`, 5)[3], `"`)
	leave, err := http.NewRequest(http.MethodPost, url+"/socket.io/?EIO=4&transport=polling&sid="+sid, strings.NewReader("1"))
	if err != nil {
		t.Fatal(err)
	}
	leave.Header.Set("Origin", url)
	if resp, err := http.DefaultClient.Do(leave); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("close: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
