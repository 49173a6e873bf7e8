package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/hub"
)

func Example() {
	key := []byte("an-example-secret-of-at-least-32-bytes")
	g, err := gateway.New(gateway.Options{
		JWT:      &auth.JWTOptions{HMACSecret: key},
		Origins:  []string{"https://app.example.com"},
		Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		panic(err)
	}
	hub.Handle(g.Hub(), "ping", func(hub.Context, struct{}) (string, error) { return "pong", nil })
	mux := http.NewServeMux()
	mux.Handle("GET /ws", g)
	mux.Handle("GET /readyz", g.ReadinessHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(key)
	dial := func(origin string) (*websocket.Conn, int) {
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", &websocket.DialOptions{
			HTTPHeader:   http.Header{"Origin": {origin}, "Authorization": {"Bearer " + tok}},
			Subprotocols: []string{"wsgate.v1"},
		})
		if err != nil {
			return nil, resp.StatusCode
		}
		return c, http.StatusSwitchingProtocols
	}
	_, status := dial("https://evil.example.net")
	fmt.Println("foreign origin:", status)
	c, status := dial("https://app.example.com")
	fmt.Println("allowed origin:", status)
	_, _, _ = c.Read(ctx) // welcome
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"event","id":1,"event":"ping"}`))
	_, ack, _ := c.Read(ctx)
	fmt.Println(string(ack))
	_ = c.Close(websocket.StatusNormalClosure, "")
	_ = g.Shutdown(ctx)
	// Output:
	// foreign origin: 403
	// allowed origin: 101
	// {"type":"ack","id":1,"data":"pong"}
}
