package room_test

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/room"
)

func ExampleNewPolicy() {
	// Conversations are open to their participants only.
	participants := map[string][]string{"conversation:c1": {"ana", "bo"}}
	policy, err := room.NewPolicy(room.PolicyOptions{
		GlobalRole: "admin",
		Rules: map[string]room.Authorizer{
			"conversation": room.AuthorizerFunc(func(_ context.Context, id auth.Identity, name string) error {
				if slices.Contains(participants[name], id.UserID) {
					return nil
				}
				return errors.New("not a participant")
			}),
		},
	})
	if err != nil {
		panic(err)
	}
	ana := auth.Identity{UserID: "ana", TenantID: "acme"}
	for _, name := range []string{"user:ana", "user:bo", "tenant:acme", "global", "conversation:c1", "board:7"} {
		err := policy.CanJoin(context.Background(), ana, name)
		fmt.Printf("%-16s allowed=%v\n", name, err == nil)
	}
	fmt.Println(room.AutoRooms(ana, "admin"))
	// Output:
	// user:ana         allowed=true
	// user:bo          allowed=false
	// tenant:acme      allowed=true
	// global           allowed=false
	// conversation:c1  allowed=true
	// board:7          allowed=false
	// [user:ana tenant:acme]
}

func ExampleIndex() {
	type conn struct{ id string }
	a, b := &conn{"a"}, &conn{"b"}
	index := room.NewIndex[*conn](0)

	first, _ := index.Join("tenant:acme", a)
	fmt.Println("a joins, first:", first) // subscribe the broker
	first, _ = index.Join("tenant:acme", b)
	fmt.Println("b joins, first:", first)

	index.Each("tenant:acme", func(c *conn) { /* enqueue the frame for c */ })
	fmt.Println("members:", index.Count("tenant:acme"))

	left, last := index.Leave("tenant:acme", a)
	fmt.Println("a leaves:", left, "last:", last)
	fmt.Println("b disconnects, emptied:", index.LeaveAll(b)) // unsubscribe these
	// Output:
	// a joins, first: true
	// b joins, first: false
	// members: 2
	// a leaves: true last: false
	// b disconnects, emptied: [tenant:acme]
}
