package socketio_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/socketio"
)

// tokens is the example's Authenticator; a service uses auth.NewJWT.
type tokens map[string]string

func (t tokens) Authenticate(_ context.Context, token string) (auth.Identity, error) {
	if user, ok := t[token]; ok {
		return auth.Identity{UserID: user}, nil
	}
	return auth.Identity{}, auth.ErrInvalidToken
}

type greeting struct {
	Name string `json:"name" validate:"required,max=32"`
}

// A hub's handlers served to Socket.IO clients on /socket.io/. The client
// here speaks the raw protocol, to show the packets; socket.io-client
// would write io(url, {auth: {token}}) and socket.emitWithAck("greet",
// {name: "Ada"}).
func Example() {
	h, err := hub.New(hub.Options{Authenticator: tokens{"secret-token": "ada"}})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	hub.Handle(h, "greet", func(ctx hub.Context, in greeting) (string, error) {
		return "hello " + in.Name, nil
	})
	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: []string{"https://app.example"}})
	if err != nil {
		panic(err)
	}
	srv, err := socketio.New(socketio.Options{
		Namespaces: map[string]*hub.Hub{"/": h},
		Origins:    origins,
	})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example"}}})
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	read := func() string {
		_, p, err := c.Read(ctx)
		if err != nil {
			panic(err)
		}
		return string(p)
	}
	fmt.Println(read()[:7]) // Engine.IO's open packet
	_ = c.Write(ctx, websocket.MessageText, []byte(`40{"token":"secret-token"}`))
	fmt.Println(read()[:9]) // CONNECT's answer, with the Socket.IO id
	_ = c.Write(ctx, websocket.MessageText, []byte(`421["greet",{"name":"Ada"}]`))
	fmt.Println(read())
	_ = c.Write(ctx, websocket.MessageText, []byte(`422["greet",{}]`))
	fmt.Println(read())
	// Output:
	// 0{"sid"
	// 40{"sid":
	// 431["hello Ada"]
	// 432[{"error":{"code":"INVALID_MESSAGE","message":"field \"name\" fails \"required\""}}]
}

// NestJS mode keeps the frontends of a NestJS gateway working unchanged:
// a handler that returns {event, data} emits that event, as a
// @SubscribeMessage handler returning WsResponse does.
func ExampleMode_nestJS() {
	h, err := hub.New(hub.Options{Authenticator: tokens{"t": "ada"}})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	type wsResponse struct {
		Event string `json:"event"`
		Data  any    `json:"data"`
	}
	hub.Handle(h, "events", func(ctx hub.Context, in []int) (wsResponse, error) {
		return wsResponse{Event: "events", Data: len(in)}, nil
	})
	srv, err := socketio.New(socketio.Options{Namespaces: map[string]*hub.Hub{"/": h}, Mode: socketio.NestJS})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://localhost:3000"}}})
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	read := func() string {
		_, p, err := c.Read(ctx)
		if err != nil {
			panic(err)
		}
		return string(p)
	}
	read()
	_ = c.Write(ctx, websocket.MessageText, []byte(`40{"token":"t"}`))
	read()
	// socket.emit("events", 1, 2, 3): several arguments are one array.
	_ = c.Write(ctx, websocket.MessageText, []byte(`42["events",1,2,3]`))
	fmt.Println(read())
	// Output: 42["events",3]
}

// NewBinary turns the []byte in a value into attachments, which
// socket.io-client hands to the page as ArrayBuffers (Buffers in Node).
func ExampleNewBinary() {
	type thumbnail struct {
		Name  string `json:"name"`
		Image []byte `json:"image"`
	}
	b, err := socketio.NewBinary(thumbnail{Name: "cat.png", Image: []byte{0x89, 'P', 'N', 'G'}})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b.JSON))
	fmt.Printf("%q\n", b.Attachments)
	// Output:
	// {"name":"cat.png","image":{"_placeholder":true,"num":0}}
	// ["\x89PNG"]
}

// A handler asks its client for an acknowledgement and waits for it; in
// the page, socket.on("confirm", (what, ack) => ack(window.confirm(what)))
// answers.
func ExampleEmitWithAck() {
	h, err := hub.New(hub.Options{Authenticator: tokens{"t": "ada"}})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	hub.Handle(h, "delete", func(ctx hub.Context, file string) (string, error) {
		answer, err := socketio.EmitWithAck(ctx, "confirm", "delete "+file+"?")
		if err != nil {
			return "", err // no answer within the handler's deadline, or gone
		}
		if string(answer) != "true" {
			return "kept", nil
		}
		return "deleted", nil
	})
	srv, err := socketio.New(socketio.Options{Namespaces: map[string]*hub.Hub{"/": h}})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://localhost:3000"}}})
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	read := func() string {
		_, p, err := c.Read(ctx)
		if err != nil {
			panic(err)
		}
		return string(p)
	}
	read()
	_ = c.Write(ctx, websocket.MessageText, []byte(`40{"token":"t"}`))
	read()
	_ = c.Write(ctx, websocket.MessageText, []byte(`421["delete","notes.txt"]`))
	fmt.Println(read()) // the server's EVENT, with its ack id 0
	_ = c.Write(ctx, websocket.MessageText, []byte(`430[true]`))
	fmt.Println(read()) // the handler's answer to the client's ack id 1
	// Output:
	// 420["confirm","delete notes.txt?"]
	// 431["deleted"]
}

// Connection state recovery: the hub keeps the history of the rooms a
// client relies on, and the session records live in a store every node
// reads (adapter/redis's Sessions with several nodes). A client that comes
// back with the pid and offset socket.io-client keeps resumes its session.
func ExampleRecovery() {
	h, err := hub.New(hub.Options{
		Authenticator: tokens{"secret-token": "ada"},
		History:       map[string]hub.HistoryPolicy{"user": {Size: 100, TTL: 2 * time.Minute}},
	})
	if err != nil {
		panic(err)
	}
	sessions := memory.NewSessions(memory.SessionsOptions{})
	defer sessions.Close()
	srv, err := socketio.New(socketio.Options{
		Namespaces: map[string]*hub.Hub{"/": h},
		Recovery:   &socketio.Recovery{Store: sessions, MaxDisconnectionDuration: 2 * time.Minute},
	})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ctx := context.Background()
	defer srv.Shutdown(ctx)
	defer h.Shutdown(ctx)

	dial := func() *websocket.Conn {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {ts.URL}}})
		if err != nil {
			panic(err)
		}
		_, _, _ = c.Read(ctx) // Engine.IO open
		return c
	}
	read := func(c *websocket.Conn) string {
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				panic(err)
			}
			if string(p) != "2" { // not a ping
				return string(p)
			}
		}
	}
	connect := func(c *websocket.Conn, auth string) (pid string) {
		_ = c.Write(ctx, websocket.MessageText, []byte("40"+auth))
		var ack struct{ PID string }
		_ = json.Unmarshal([]byte(strings.TrimPrefix(read(c), "40")), &ack)
		return ack.PID
	}

	c := dial()
	pid := connect(c, `{"token":"secret-token"}`)
	_ = h.ToUser(ctx, "ada", "note", map[string]int{"n": 1})
	var args []any
	_ = json.Unmarshal([]byte(read(c)[2:]), &args)
	offset := args[len(args)-1].(string) // the last argument: what the client keeps
	fmt.Println("received", args[0], args[1])
	c.CloseNow() // the connection drops

	_ = h.ToUser(ctx, "ada", "note", map[string]int{"n": 2}) // missed

	c = dial()
	again := connect(c, fmt.Sprintf(`{"token":"secret-token","pid":%q,"offset":%q}`, pid, offset))
	fmt.Println("recovered:", again == pid)
	args = nil
	_ = json.Unmarshal([]byte(read(c)[2:]), &args)
	fmt.Println("replayed", args[0], args[1])
	c.CloseNow()
	// Output:
	// received note map[n:1]
	// recovered: true
	// replayed note map[n:2]
}
