package redis_test

import (
	"io"
	"os"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
)

// TestExampleNewSessions runs ExampleNewSessions, which has no Output
// comment since it needs a Redis, against a server of its own.
func TestExampleNewSessions(t *testing.T) {
	srv := redistest.Start(t)
	old := redisAddr
	redisAddr = srv.Addr()
	defer func() { redisAddr = old }()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	func() {
		defer func() { os.Stdout = stdout }()
		ExampleNewSessions()
	}()
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "true\n"; string(out) != want {
		t.Fatalf("ExampleNewSessions printed %q, want %q", out, want)
	}
}
