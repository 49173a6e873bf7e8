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
// back with the private id gets it once, and only once.
func ExampleSessions() {
	sessions := memory.NewSessions(memory.SessionsOptions{})
	defer sessions.Close()
	ctx := context.Background()

	if err := sessions.Save(ctx, "private-id", []byte(`{"offset":42}`), 2*time.Minute); err != nil {
		log.Fatal(err)
	}
	record, err := sessions.Take(ctx, "private-id")
	fmt.Println(string(record), err)
	_, err = sessions.Take(ctx, "private-id")
	fmt.Println(errors.Is(err, adapter.ErrNoSession))
	// Output:
	// {"offset":42} <nil>
	// true
}
