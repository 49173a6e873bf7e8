package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/redis"
)

// The node a client left saves its session; the node it comes back to,
// any of them, takes it, with the version that fences the session's
// writers.
func ExampleNewSessions() {
	sessions, err := redis.NewSessions(redis.SessionsOptions{Addrs: []string{redisAddr}})
	if err != nil {
		log.Fatal(err)
	}
	defer sessions.Close()
	ctx := context.Background()

	// On the node the connection of version 1 dropped from:
	err = sessions.Save(ctx, "private-id", 1, []byte(`{"offset":42}`), 2*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	// On the node the client reconnects to, with the id it kept; the
	// tombstone left in the record's place lives for the TTL given here.
	record, v, err := sessions.Take(ctx, "private-id", 2*time.Minute)
	switch {
	case errors.Is(err, adapter.ErrNoSession):
		// Expired or already taken: start a new session.
	case err != nil:
		log.Fatal(err) // Redis unreachable within Timeout
	default:
		log.Printf("resuming from %s", record)
		// The resumed connection saves as version v+1; a late Save of the
		// connection it replaced, at version v, is refused.
		err = sessions.Save(ctx, "private-id", v, []byte(`{"offset":40}`), 2*time.Minute)
		fmt.Println(errors.Is(err, adapter.ErrStaleSession))
	}
}
