package redis_test

import (
	"io"
	"os"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
)

// TestExample runs Example against a real Redis: it has no Output comment
// because go test would otherwise run it without one.
func TestExample(t *testing.T) {
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
		Example()
	}()
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "room:lobby hello\n<nil>\n"; string(out) != want {
		t.Fatalf("Example printed %q, want %q", out, want)
	}
}
