package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

type Greeting struct {
	Name string `json:"name" validate:"required,max=50"`
}

type Reply struct {
	Text string `json:"text"`
}

func Example() {
	// A hub to talk to: JWT authentication, chat:* rooms open to all, one
	// event.
	secret := []byte("an-example-secret-of-at-least-32-bytes")
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
	if err != nil {
		panic(err)
	}
	open := func(context.Context, auth.Identity, room.Name) (bool, error) { return true, nil }
	rooms, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{"chat": open}})
	if err != nil {
		panic(err)
	}
	h, err := hub.New(hub.Options{Authenticator: authn, Rooms: rooms})
	if err != nil {
		panic(err)
	}
	hub.Handle(h, "greet", func(_ hub.Context, in Greeting) (Reply, error) {
		return Reply{Text: "hello, " + in.Name}, nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer h.Shutdown(ctx)

	// The client.
	events := make(chan client.Event, 1)
	c, err := client.Dial(ctx, client.Options{
		URL:    "ws" + strings.TrimPrefix(srv.URL, "http"),
		Origin: srv.URL, // the hub accepts same-origin clients by default
		Token: func(ctx context.Context) (string, error) {
			// Called on every (re)connect: return a fresh token.
			return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
			}).SignedString(secret)
		},
		OnEvent: func(ev client.Event) { events <- ev },
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	reply, err := client.Call[Reply](ctx, c, "greet", Greeting{Name: "Bob"})
	fmt.Println(reply.Text, err)

	_, err = client.Call[Reply](ctx, c, "greet", Greeting{Name: ""})
	var se *client.ServerError
	fmt.Println(errors.As(err, &se), se.Code)

	if err := c.Join(ctx, "chat:lobby"); err != nil {
		panic(err)
	}
	_ = h.Broadcast(ctx, "chat:lobby", "news", Greeting{Name: "everyone"})
	ev := <-events
	fmt.Println(ev.Room, ev.Name, string(ev.Data))
	// Output:
	// hello, Bob <nil>
	// true INVALID_MESSAGE
	// chat:lobby news {"name":"everyone"}
}
