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
	participants := map[string][]string{"c1": {"ana", "bo"}}
	policy, err := room.NewPolicy(room.PolicyOptions{
		GlobalRole: "admin",
		Rules: map[string]room.Rule{
			"conversation": func(_ context.Context, id auth.Identity, r room.Name) (bool, error) {
				return slices.Contains(participants[r.Arg], id.UserID), nil
			},
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

// A rule gets the room's kind and argument parsed. It answers false to deny;
// an error means it could not decide, and is not a denial: the hub answers
// INTERNAL and logs the cause instead of telling the client FORBIDDEN.
func ExampleRule() {
	errDown := errors.New("members database unreachable")
	members := func(ctx context.Context, project, user string) (bool, error) {
		if project == "p9" {
			return false, errDown // say, a timeout
		}
		return project == "p1" && user == "ana", nil
	}
	policy, err := room.NewPolicy(room.PolicyOptions{
		Rules: map[string]room.Rule{
			"project": func(ctx context.Context, id auth.Identity, r room.Name) (bool, error) {
				return members(ctx, r.Arg, id.UserID)
			},
		},
	})
	if err != nil {
		panic(err)
	}
	ana := auth.Identity{UserID: "ana"}
	for _, name := range []string{"project:p1", "project:p2", "project:p9"} {
		err := policy.CanJoin(context.Background(), ana, name)
		fmt.Printf("%-10s allowed=%-5v denied=%-5v failed=%v\n",
			name, err == nil, errors.Is(err, room.ErrForbidden), errors.Is(err, errDown))
	}
	// Output:
	// project:p1 allowed=true  denied=false failed=false
	// project:p2 allowed=false denied=true  failed=false
	// project:p9 allowed=false denied=false failed=true
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

func ExampleUser() {
	// Plain ids keep their names; any other id is escaped, so that every
	// user can be reached through a valid room name.
	for _, id := range []string{"ana", "auth0|507f1f77bcf86cd799439011", "josé"} {
		name := room.User(id)
		fmt.Println(name, room.Valid(name))
	}
	// Output:
	// user:ana true
	// user:auth0%7C507f1f77bcf86cd799439011 true
	// user:jos%C3%A9 true
}

// A user room's argument is the escaped id; Unescape gives the id back.
func ExampleUnescape() {
	name := room.User("auth0|507f1f77")
	_, arg, _ := room.Parse(name)
	id, err := room.Unescape(arg)
	fmt.Println(name, id, err)
	// Output: user:auth0%7C507f1f77 auth0|507f1f77 <nil>
}
