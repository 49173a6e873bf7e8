package redis_test

import (
	"io"
	"os"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
)

// The examples that need a Redis have no Output comment (go test would run
// them without one); these tests run them against a server of their own
// and check what they print.

func TestExample(t *testing.T) {
	if got, want := runExample(t, Example), "room:lobby hello\n<nil>\n"; got != want {
		t.Fatalf("Example printed %q, want %q", got, want)
	}
}

func TestExampleNewSessions(t *testing.T) {
	if got, want := runExample(t, ExampleNewSessions), "true\n"; got != want {
		t.Fatalf("ExampleNewSessions printed %q, want %q", got, want)
	}
}

// runExample runs example against a Redis of its own and returns what it
// printed.
func runExample(t *testing.T, example func()) string {
	t.Helper()
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
		example()
	}()
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
