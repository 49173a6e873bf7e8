package adversarial

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/hub"
)

// TestFirstMessageAuthPipelined attacks a server that lets clients
// authenticate with their first message. The attacker upgrades without a
// credential and pipelines, in one TCP write, its auth message and what it
// wants acted on, hoping something runs before the server knows who it is
// or in another order than promised. The welcome comes first, then the
// auth message's ack, then the answers in order, the join of another
// tenant's room refused. A message sent before the auth message is refused
// and the connection closed with 4001 without the auth ever being read, as
// is a forged token and silence.
func TestFirstMessageAuthPipelined(t *testing.T) {
	srv := Start(t, Config{Hub: func(o *hub.Options) {
		o.FirstMessageAuth = true
		o.AuthTimeout = 300 * time.Millisecond
	}})
	hub.Handle(srv.Hub, "echo", func(_ hub.Context, in string) (string, error) { return in, nil })
	tok := Token(t, jwt.MapClaims{"tenant_id": "t2"})
	msg := func(id int, body string) []byte {
		return fmt.Appendf(nil, `{"id":%d,%s}`, id, body)
	}
	authWith := func(id int, tok string) []byte {
		return msg(id, `"type":"auth","data":{"token":"`+tok+`"}`)
	}
	dial := func(t *testing.T, frames ...[]byte) *RawConn {
		c, resp, err := srv.DialRaw(t, Handshake{})
		if err != nil {
			t.Fatalf("upgrade without a credential: %v %v", err, resp)
		}
		for _, f := range frames {
			c.Send(FIN|OpText, f)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("welcome_then_the_auth_ack_then_the_answers_in_order", func(t *testing.T) {
		c := dial(t, authWith(1, tok),
			msg(2, `"type":"join","room":"tenant:t1"`),
			msg(3, `"type":"event","event":"echo","data":"hi"`))
		for _, want := range []string{"welcome", "ack 1", "error 2 FORBIDDEN", "ack 3"} {
			if got := describe(c.ReadFrame()); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		}
	})
	for _, tt := range []struct {
		name   string
		frames [][]byte
		want   string
	}{
		{"a_message_before_the_auth_closes_4001_and_the_auth_is_not_read",
			[][]byte{msg(1, `"type":"event","event":"echo","data":"hi"`), authWith(2, tok)}, "error 1 UNAUTHORIZED"},
		{"a_join_before_the_auth_closes_4001",
			[][]byte{msg(1, `"type":"join","room":"user:mallory"`), authWith(2, tok)}, "error 1 UNAUTHORIZED"},
		{"a_forged_token_closes_4001",
			[][]byte{authWith(1, Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil))}, "error 1 UNAUTHORIZED"},
		{"an_expired_token_closes_4001",
			[][]byte{authWith(1, Token(t, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}))}, "error 1 TOKEN_EXPIRED"},
		{"silence_closes_4001", nil, "error UNAUTHORIZED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, tt.frames...)
			_, before := c.ExpectClose(int(hub.CloseUnauthorized))
			if len(before) != 1 || describe(before[0]) != tt.want {
				var got []string
				for _, f := range before {
					got = append(got, describe(f))
				}
				t.Fatalf("before the close: %v, want only %s", got, tt.want)
			}
		})
	}
}

// describe sums up a server frame as "welcome", "ack <id>" or
// "error [<id>] <code>".
func describe(f RawFrame) string {
	e, ok := f.Envelope()
	if !ok {
		return f.String()
	}
	s := e.Type
	if e.ID != nil {
		s += fmt.Sprintf(" %d", *e.ID)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	return s
}
