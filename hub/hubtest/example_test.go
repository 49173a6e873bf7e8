package hubtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/hub/hubtest"
)

// A handler called with an identity and an input: its answer, a refusal by
// the hub's validation, and an event it sent the caller. In a test,
// hubtest.Connect(t, h, id) opens the connection and closes it at the end.
func Example() {
	h, err := hub.New(hub.Options{Authenticator: auth.AuthenticatorFunc(func(context.Context, string) (auth.Identity, error) {
		return auth.Identity{}, auth.ErrInvalidToken // hubtest connections bring their identity
	})})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())

	type greet struct {
		Name string `json:"name" validate:"required,max=20" sanitize:"html"`
	}
	hub.Handle(h, "greet", func(ctx hub.Context, in greet) (string, error) {
		if err := ctx.Emit("greeted", map[string]string{"by": ctx.Identity().UserID}); err != nil {
			return "", err
		}
		return "hello " + in.Name, nil
	})

	c, err := hubtest.Open(h, auth.Identity{UserID: "alice"}, hubtest.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	var reply string
	err = c.Call("greet", greet{Name: "<b>Bob</b>"}, &reply)
	fmt.Println(reply, err)

	err = c.Call("greet", greet{}, nil)
	fmt.Println(hubtest.Code(err), err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := c.Next(ctx)
	fmt.Println(ev.Name, string(ev.Data), err)
	// Output:
	// hello Bob <nil>
	// INVALID_MESSAGE hubtest: INVALID_MESSAGE: field "name" fails "required"
	// greeted {"by":"alice"} <nil>
}
