package redis_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/redis"
)

// The node a client left saves its session; the node it comes back to,
// any of them, takes it.
func ExampleNewSessions() {
	sessions, err := redis.NewSessions(redis.SessionsOptions{Addrs: []string{redisAddr}})
	if err != nil {
		log.Fatal(err)
	}
	defer sessions.Close()
	ctx := context.Background()

	// On the node the connection dropped from:
	if err := sessions.Save(ctx, "private-id", []byte(`{"offset":42}`), 2*time.Minute); err != nil {
		log.Fatal(err)
	}
	// On the node the client reconnects to, with the id it kept:
	record, err := sessions.Take(ctx, "private-id")
	switch {
	case errors.Is(err, adapter.ErrNoSession):
		// Expired or already taken: start a new session.
	case err != nil:
		log.Fatal(err) // Redis unreachable within Timeout
	default:
		log.Printf("resuming from %s", record)
	}
}
