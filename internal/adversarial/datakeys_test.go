package adversarial

import (
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/hub"
)

// TestAmbiguousData: the envelope is decoded strictly, but a typed
// handler's data is decoded by encoding/json, which matches keys case-
// insensitively (also after unescaping) and lets the last of duplicate keys
// win. A proxy, log filter or audit trail that reads the frame one way
// ("to" is x) passes what the handler reads the other way ("to" is y).
// Each should be INVALID_MESSAGE with the handler not run, as for the
// envelope.
func TestAmbiguousData(t *testing.T) {
	srv := Start(t, Config{})
	var runs atomic.Int32
	hub.Handle(srv.Hub, "transfer", func(_ hub.Context, in struct {
		To string `json:"to" validate:"required"`
	}) (string, error) {
		runs.Add(1)
		return in.To, nil
	})
	c := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "mallory"}))
	for _, tt := range []struct{ name, raw string }{
		{"key_in_upper_case", `{"type":"event","id":7,"event":"transfer","data":{"TO":"y"}}`},
		{"key_twice", `{"type":"event","id":7,"event":"transfer","data":{"to":"x","to":"y"}}`},
		{"key_twice_in_two_cases", `{"type":"event","id":7,"event":"transfer","data":{"to":"x","To":"y"}}`},
		{"key_with_an_escape", `{"type":"event","id":7,"event":"transfer","data":{"\u0074o":"y"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.SendRaw(websocket.MessageText, []byte(tt.raw))
			ExpectError(t, c.Read(), "INVALID_MESSAGE")
		})
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}
