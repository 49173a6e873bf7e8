package memory_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/memory"
)

// A node saves a connection's state when it drops; the client that comes
// back with the private id gets it once, and only once, with the version
// that fences its writers: the connection it replaces can no longer save
// over it.
func ExampleSessions() {
	sessions := memory.NewSessions(memory.SessionsOptions{})
	defer sessions.Close()
	ctx := context.Background()

	// The connection of version 1 drops and saves its state.
	err := sessions.Save(ctx, "private-id", 1, []byte(`{"offset":42}`), 2*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	// The client resumes: it gets the record once, and leaves a tombstone
	// of version 2 for as long as the TTL given here.
	record, v, err := sessions.Take(ctx, "private-id", 2*time.Minute)
	fmt.Println(string(record), v, err)
	_, _, err = sessions.Take(ctx, "private-id", 2*time.Minute)
	fmt.Println(errors.Is(err, adapter.ErrNoSession))
	// A late write of the old connection is refused; the new one, of
	// version 2, saves in its turn.
	err = sessions.Save(ctx, "private-id", 1, []byte(`{"offset":40}`), 2*time.Minute)
	fmt.Println(errors.Is(err, adapter.ErrStaleSession))
	err = sessions.Save(ctx, "private-id", 2, []byte(`{"offset":43}`), 2*time.Minute)
	fmt.Println(err)
	// Output:
	// {"offset":42} 1 <nil>
	// true
	// true
	// <nil>
}
