package redis_test

import (
	"context"
	"fmt"
	"log"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/redis"
)

// redisAddr is where the example finds Redis; TestExample points it at a
// server of its own.
var redisAddr = "127.0.0.1:6379"

// A node subscribes to a room and receives its own broadcast back through
// Redis, as every other subscribed node would.
func Example() {
	broker, err := redis.New(redis.Options{
		Addrs:   []string{redisAddr},
		Prefix:  "chat:",
		HMACKey: []byte("shared by every node, 32+ bytes!"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	got := make(chan string, 1)
	// A hub attaches its own handler; this one just reports.
	if err := broker.Attach(func(m adapter.Message) {
		got <- m.Topic + " " + string(m.Payload)
	}); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := broker.Subscribe(ctx, "room:lobby"); err != nil {
		log.Fatal(err)
	}
	if _, err := broker.Publish(ctx, "room:lobby", []byte("hello"), adapter.PublishOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	fmt.Println(broker.Health(ctx))
}
