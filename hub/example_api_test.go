package hub_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// The examples share a secret, a server and a raw client, so that each
// shows only the API it is about.
var exampleSecret = []byte("an-example-secret-of-at-least-32-bytes")

// serveExample builds a hub with opts (and a JWT authenticator), lets
// register add handlers, and serves it over loopback.
func serveExample(opts hub.Options, register func(h *hub.Hub)) (*hub.Hub, *httptest.Server) {
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: exampleSecret})
	if err != nil {
		panic(err)
	}
	opts.Authenticator = authn
	h, err := hub.New(opts)
	if err != nil {
		panic(err)
	}
	if register != nil {
		register(h)
	}
	return h, httptest.NewServer(h)
}

// exampleConn is a raw WebSocket client that prints what it reads.
type exampleConn struct{ ws *websocket.Conn }

func dialExample(srv *httptest.Server, user string, roles ...string) exampleConn {
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "roles": roles, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(exampleSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		HTTPHeader:   http.Header{"Origin": {srv.URL}, "Authorization": {"Bearer " + tok}},
		Subprotocols: []string{"wsgate.v1"},
	})
	if err != nil {
		panic(err)
	}
	c := exampleConn{ws}
	c.read() // the welcome
	return c
}

// stopExample drops the clients, then shuts the hub and the server down.
func stopExample(h *hub.Hub, srv *httptest.Server, conns ...exampleConn) {
	for _, c := range conns {
		_ = c.ws.CloseNow()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Shutdown(ctx)
	srv.Close()
}

func (c exampleConn) send(frame string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		panic(err)
	}
}

// read returns the next frame, or the close code once the server closed.
func (c exampleConn) read() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return fmt.Sprint("closed ", int(websocket.CloseStatus(err)))
	}
	return string(b)
}

func ExampleHub_Shutdown() {
	h, srv := serveExample(hub.Options{}, nil)
	defer srv.Close()
	c := dialExample(srv, "alice")

	// On SIGTERM: new upgrades get 503, every client gets a bye and close
	// code 1012 (reconnect elsewhere), and Shutdown waits for them to go
	// until ctx is done.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Shutdown(ctx) }()
	fmt.Println(c.read())
	fmt.Println(c.read())
	fmt.Println("shutdown:", <-done)
	// Output:
	// {"type":"bye","data":{"reason":"shutdown"}}
	// closed 1012
	// shutdown: <nil>
}

func ExampleWithRateLimit() {
	// EventRate is every event's default bucket per connection; here one
	// message an hour after a burst of 3, so that the example does not
	// depend on timing.
	h, srv := serveExample(hub.Options{
		EventRate: hub.Limit{Rate: hub.Every(time.Hour), Burst: 3},
	}, func(h *hub.Hub) {
		hub.Handle(h, "chat", func(hub.Context, struct{}) (struct{}, error) { return struct{}{}, nil })
		// typing gets a bucket of its own, smaller.
		hub.Handle(h, "typing", func(hub.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
			hub.WithRateLimit(hub.Limit{Rate: hub.Every(time.Hour), Burst: 1}))
	})
	c := dialExample(srv, "alice")
	defer stopExample(h, srv, c)
	for id := 1; id <= 2; id++ {
		c.send(fmt.Sprintf(`{"type":"event","id":%d,"event":"typing"}`, id))
		fmt.Println(c.read())
	}
	c.send(`{"type":"event","id":3,"event":"chat"}`)
	fmt.Println(c.read())
	// Output:
	// {"type":"ack","id":1}
	// {"type":"error","id":2,"code":"RATE_LIMITED","message":"too many messages"}
	// {"type":"ack","id":3}
}

type Note struct {
	Project string `json:"project" validate:"required,max=36"`
	Text    string `json:"text" validate:"required,max=500" sanitize:"html"`
}

func ExampleHub_JoinUser() {
	members := map[string][]string{"p1": {"alice"}} // the service's own data
	rooms, err := room.NewPolicy(room.PolicyOptions{Rules: map[string]room.Rule{
		// Only a project's members may join project:{id}.
		"project": func(_ context.Context, id auth.Identity, r room.Name) (bool, error) {
			return slices.Contains(members[r.Arg], id.UserID), nil
		},
	}})
	if err != nil {
		panic(err)
	}
	h, srv := serveExample(hub.Options{Rooms: rooms}, func(h *hub.Hub) {
		hub.Handle(h, "note", func(ctx hub.Context, in Note) (struct{}, error) {
			name := "project:" + in.Project
			if !ctx.InRoom(name) {
				return struct{}{}, hub.Errorf(hub.CodeForbidden, "join the project first")
			}
			// Every member but the sender.
			return struct{}{}, ctx.Broadcast(name, "note", in, hub.Except(ctx.ConnID()))
		})
	})
	alice, bob := dialExample(srv, "alice"), dialExample(srv, "bob")
	defer stopExample(h, srv, alice, bob)

	alice.send(`{"type":"join","id":1,"room":"project:p1"}`)
	fmt.Println("alice:", alice.read())
	bob.send(`{"type":"join","id":1,"room":"project:p1"}`)
	fmt.Println("bob:", bob.read())

	// A REST endpoint adds bob to the project: every connection of his, on
	// every node, joins the room, the policy bypassed.
	members["p1"] = append(members["p1"], "bob")
	if err := h.JoinUser(context.Background(), "bob", "project:p1"); err != nil {
		panic(err)
	}
	waitUntil(func() bool {
		users, _ := h.Presence(context.Background(), "project:p1")
		return slices.Contains(users, "bob")
	})
	alice.send(`{"type":"event","id":2,"event":"note","data":{"project":"p1","text":"<b>ship</b> it"}}`)
	fmt.Println("alice:", alice.read())
	fmt.Println("bob:", bob.read())
	// Output:
	// alice: {"type":"ack","id":1}
	// bob: {"type":"error","id":1,"code":"FORBIDDEN","message":"not allowed to join this room"}
	// alice: {"type":"ack","id":2}
	// bob: {"type":"event","event":"note","room":"project:p1","data":{"project":"p1","text":"ship it"}}
}

// waitUntil polls cond for up to 5 s: JoinUser travels through the broker.
func waitUntil(cond func() bool) {
	for deadline := time.Now().Add(5 * time.Second); !cond() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func ExampleHub_Use() {
	h, srv := serveExample(hub.Options{}, func(h *hub.Hub) {
		// Per-event authorization for every admin: event, without touching
		// each registration. Middleware runs after validation, within the
		// handler's deadline.
		h.Use(func(next hub.HandlerFunc) hub.HandlerFunc {
			return func(ctx hub.Context, in any) (any, error) {
				if strings.HasPrefix(ctx.Event(), "admin:") && !slices.Contains(ctx.Identity().Roles, "admin") {
					return nil, hub.Errorf(hub.CodeForbidden, "admins only")
				}
				return next(ctx, in)
			}
		})
		hub.Handle(h, "admin:purge", func(hub.Context, struct{}) (string, error) { return "purged", nil })
	})
	user, admin := dialExample(srv, "alice"), dialExample(srv, "root", "admin")
	defer stopExample(h, srv, user, admin)
	user.send(`{"type":"event","id":1,"event":"admin:purge"}`)
	fmt.Println(user.read())
	admin.send(`{"type":"event","id":1,"event":"admin:purge"}`)
	fmt.Println(admin.read())
	// Output:
	// {"type":"error","id":1,"code":"FORBIDDEN","message":"admins only"}
	// {"type":"ack","id":1,"data":"purged"}
}

func ExampleOptions_hooks() {
	ended := make(chan string, 1)
	h, srv := serveExample(hub.Options{
		// Both run on the connection's goroutine, outside every hub lock.
		OnConnect: func(info hub.ConnInfo) {
			fmt.Println("connect", info.Identity.UserID, info.Request.ClientIP)
		},
		OnDisconnect: func(info hub.ConnInfo, reason string) {
			seen, _ := info.State(lastEvent{}).(string)
			ended <- fmt.Sprintf("disconnect %s %s after %s", info.Identity.UserID, reason, seen)
		},
	}, func(h *hub.Hub) {
		hub.Handle(h, "ping", func(ctx hub.Context, _ struct{}) (struct{}, error) {
			ctx.SetState(lastEvent{}, ctx.Event()) // per-connection state
			return struct{}{}, nil
		})
	})
	c := dialExample(srv, "alice")
	defer stopExample(h, srv, c)
	c.send(`{"type":"event","id":1,"event":"ping"}`)
	c.read()
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	select {
	case line := <-ended:
		fmt.Println(line)
	case <-time.After(5 * time.Second):
		fmt.Println(errors.New("no disconnect"))
	}
	// Output:
	// connect alice 127.0.0.1
	// disconnect alice client_closed after ping
}

// lastEvent is the key of a connection's state: a type of one's own.
type lastEvent struct{}
