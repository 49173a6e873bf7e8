package adversarial

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/hub"
)

// TestAmbiguousEnvelopes sends envelopes that two JSON decoders could read
// two ways (a key in another case or escaped, a key given twice, a second
// object after the first), the trick that gets a message past a proxy or a
// log filter that reads it one way while the server reads it the other.
// The server reads none of them: each is INVALID_MESSAGE, the event is not
// run and nothing else happens.
func TestAmbiguousEnvelopes(t *testing.T) {
	srv := Start(t, Config{})
	var runs atomic.Int32
	hub.Handle(srv.Hub, "transfer", func(_ hub.Context, in struct {
		To string `json:"to" validate:"required"`
	}) (string, error) {
		runs.Add(1)
		return in.To, nil
	})
	deep := strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000)
	for _, tt := range []struct{ name, raw string }{
		{"type_in_upper_case", `{"TYPE":"event","event":"transfer","data":{"to":"x"}}`},
		{"type_capitalised", `{"Type":"event","event":"transfer","data":{"to":"x"}}`},
		{"event_capitalised", `{"type":"event","Event":"transfer","data":{"to":"x"}}`},
		{"data_capitalised", `{"type":"event","event":"transfer","Data":{"to":"x"}}`},
		{"id_in_upper_case", `{"type":"event","ID":1,"event":"transfer","data":{"to":"x"}}`},
		{"key_with_an_escape", `{"\u0074ype":"event","event":"transfer","data":{"to":"x"}}`},
		{"key_with_a_trailing_space", `{"type ":"event","event":"transfer","data":{"to":"x"}}`},
		{"key_with_a_nul", `{"type\u0000":"event","event":"transfer","data":{"to":"x"}}`},
		{"type_twice", `{"type":"join","type":"event","event":"transfer","data":{"to":"x"}}`},
		{"event_twice", `{"type":"event","event":"nothing","event":"transfer","data":{"to":"x"}}`},
		{"data_twice", `{"type":"event","event":"transfer","data":{},"data":{"to":"x"}}`},
		{"id_twice", `{"type":"event","id":1,"id":2,"event":"transfer","data":{"to":"x"}}`},
		{"token_twice", `{"type":"auth","data":{"token":"a.b.c","token":"d.e.f"}}`},
		{"token_capitalised", `{"type":"auth","data":{"Token":"a.b.c"}}`},
		{"two_objects", `{"type":"event","event":"nothing"}{"type":"event","event":"transfer","data":{"to":"x"}}`},
		{"trailing_garbage", `{"type":"event","event":"transfer","data":{"to":"x"}} //`},
		{"prototype_key", `{"type":"event","event":"transfer","data":{"to":"x"},"__proto__":{"admin":true}}`},
		{"data_nested_20000_deep", `{"type":"event","event":"transfer","data":` + deep + `}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "mallory-" + tt.name, "tenant_id": "t2"})) // a user per case, like TestFloods
			c.SendRaw(websocket.MessageText, []byte(tt.raw))
			// A call that follows shows a frame accepted without an answer.
			c.Send(map[string]any{"type": "event", "id": 99, "event": "nothing"})
			ExpectError(t, c.Read(), "INVALID_MESSAGE")
		})
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
	c := srv.Connect(t, Token(t, nil))
	if f := c.Call(map[string]any{"type": "event", "event": "transfer", "data": map[string]any{"to": "x"}}); f.Type != "ack" {
		t.Fatalf("the genuine call got %+v", f)
	}
}
