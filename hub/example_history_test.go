package hub_test

import (
	"context"
	"encoding/json"
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

// A user's room keeps what is sent to them for two minutes: a client that
// was away rejoins the room with the position it had and gets what it
// missed, in order, before anything new.
func ExampleHistoryPolicy() {
	secret := []byte("an-example-secret-of-at-least-32-bytes")
	authn, _ := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
	h, err := hub.New(hub.Options{
		Authenticator: authn,
		History:       map[string]hub.HistoryPolicy{"user": {Size: 100, TTL: 2 * time.Minute}},
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ana", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	connect := func() *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
			HTTPHeader:   http.Header{"Origin": {srv.URL}, "Authorization": {"Bearer " + tok}},
			Subprotocols: []string{"wsgate.v1"},
		})
		if err != nil {
			panic(err)
		}
		return ws
	}
	type frame struct {
		Type, Event, Room string
		Offset            uint64
		Epoch             string
		Data              json.RawMessage
	}
	read := func(ws *websocket.Conn) frame {
		_, b, _ := ws.Read(ctx)
		var f frame
		_ = json.Unmarshal(b, &f)
		return f
	}

	ws := connect()
	read(ws) // the welcome, with the room's position (offset 0)
	_ = h.ToUser(ctx, "ana", "note", "first")
	last := read(ws)
	fmt.Println(last.Room, last.Offset, string(last.Data))
	ws.CloseNow()

	// Sent while ana is away.
	_ = h.ToUser(ctx, "ana", "note", "second")
	_ = h.ToUser(ctx, "ana", "note", "third")

	back := connect()
	defer back.CloseNow()
	read(back) // the welcome
	since, _ := json.Marshal(map[string]any{"since": map[string]any{"offset": last.Offset, "epoch": last.Epoch}})
	_ = back.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"join","id":1,"room":"user:ana","data":%s}`, since))
	ack := read(back)
	var r struct {
		Recovered bool `json:"recovered"`
		Missed    int  `json:"missed"`
	}
	_ = json.Unmarshal(ack.Data, &r)
	fmt.Println(ack.Type, r.Recovered, r.Missed)
	for range r.Missed {
		f := read(back)
		fmt.Println(f.Room, f.Offset, string(f.Data))
	}
	// Output:
	// user:ana 1 "first"
	// ack true 2
	// user:ana 2 "second"
	// user:ana 3 "third"
}
