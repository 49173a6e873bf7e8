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

// rawClient is the raw Socket.IO client of these examples: a WebSocket
// session on the server at url, from a page of origin, whose Engine.IO
// open packet read returns first; read skips the server's pings.
type rawClient struct {
	c *websocket.Conn
}

func dialRaw(url, origin string) rawClient {
	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
	if err != nil {
		panic(err)
	}
	return rawClient{c: c}
}

func (r rawClient) send(packet string) {
	_ = r.c.Write(context.Background(), websocket.MessageText, []byte(packet))
}

func (r rawClient) read() string {
	for {
		_, p, err := r.c.Read(context.Background())
		if err != nil {
			panic(err)
		}
		if string(p) != "2" { // not a ping
			return string(p)
		}
	}
}

func (r rawClient) close() { r.c.CloseNow() }

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

	c := dialRaw(hs.URL, "https://app.example")
	defer c.close()
	fmt.Println(c.read()[:7]) // Engine.IO's open packet
	c.send(`40{"token":"secret-token"}`)
	fmt.Println(c.read()[:9]) // CONNECT's answer, with the Socket.IO id
	c.send(`421["greet",{"name":"Ada"}]`)
	fmt.Println(c.read())
	c.send(`422["greet",{}]`)
	fmt.Println(c.read())
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

	c := dialRaw(hs.URL, "http://localhost:3000")
	defer c.close()
	c.read() // Engine.IO's open packet
	c.send(`40{"token":"t"}`)
	c.read() // CONNECT's answer
	// socket.emit("events", 1, 2, 3): several arguments are one array.
	c.send(`42["events",1,2,3]`)
	fmt.Println(c.read())
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

	c := dialRaw(hs.URL, "http://localhost:3000")
	defer c.close()
	c.read() // Engine.IO's open packet
	c.send(`40{"token":"t"}`)
	c.read() // CONNECT's answer
	c.send(`421["delete","notes.txt"]`)
	fmt.Println(c.read()) // the server's EVENT, with its ack id 0
	c.send(`430[true]`)
	fmt.Println(c.read()) // the handler's answer to the client's ack id 1
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

	connect := func(c rawClient, auth string) (pid string) {
		c.read() // Engine.IO's open packet
		c.send("40" + auth)
		var ack struct{ PID string }
		_ = json.Unmarshal([]byte(strings.TrimPrefix(c.read(), "40")), &ack)
		return ack.PID
	}

	c := dialRaw(ts.URL, ts.URL)
	pid := connect(c, `{"token":"secret-token"}`)
	_ = h.ToUser(ctx, "ada", "note", map[string]int{"n": 1})
	var args []any
	_ = json.Unmarshal([]byte(c.read()[2:]), &args)
	offset := args[len(args)-1].(string) // the last argument: what the client keeps
	fmt.Println("received", args[0], args[1])
	c.close() // the connection drops

	_ = h.ToUser(ctx, "ada", "note", map[string]int{"n": 2}) // missed

	c = dialRaw(ts.URL, ts.URL)
	again := connect(c, fmt.Sprintf(`{"token":"secret-token","pid":%q,"offset":%q}`, pid, offset))
	fmt.Println("recovered:", again == pid)
	args = nil
	_ = json.Unmarshal([]byte(c.read()[2:]), &args)
	fmt.Println("replayed", args[0], args[1])
	c.close()
	// Output:
	// received note map[n:1]
	// recovered: true
	// replayed note map[n:2]
}
