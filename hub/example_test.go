package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
)

type Greeting struct {
	Name string `json:"name" validate:"required,max=50" sanitize:"html"`
}

type Reply struct {
	Text string `json:"text"`
}

func Example() {
	secret := []byte("an-example-secret-of-at-least-32-bytes")
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
	if err != nil {
		panic(err)
	}
	h, err := hub.New(hub.Options{Authenticator: authn})
	if err != nil {
		panic(err)
	}
	hub.Handle(h, "greet", func(ctx hub.Context, in Greeting) (Reply, error) {
		return Reply{Text: "hello, " + in.Name}, nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	// A client: same-origin, bearer token, subprotocol wsgate.v1.
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	hdr := http.Header{"Origin": {srv.URL}, "Authorization": {"Bearer " + tok}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		HTTPHeader: hdr, Subprotocols: []string{"wsgate.v1"},
	})
	if err != nil {
		panic(err)
	}
	defer ws.CloseNow()
	_, welcome, _ := ws.Read(ctx)
	fmt.Println(strings.Contains(string(welcome), `"type":"welcome"`))
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"event","id":1,"event":"greet","data":{"name":"<b>Bob</b>"}}`))
	_, ack, _ := ws.Read(ctx)
	fmt.Println(string(ack))
	ws.Close(websocket.StatusNormalClosure, "")
	_ = h.Shutdown(ctx)
	// Output:
	// true
	// {"type":"ack","id":1,"data":{"text":"hello, Bob"}}
}
