package socketio

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/hub"
)

// NestJS mode reproduces @nestjs/platform-socket.io's IoAdapter: one
// argument is the payload, several are an array, a returned {event, data}
// is emitted instead of acked, and errors are the "exception" event.
func TestNestJSMode(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Mode = NestJS }, nil)
	hub.Handle(e.main, "reply", func(ctx hub.Context, in json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{"event":"replied","data":` + string(in) + `}`), nil
	})
	hub.Handle(e.main, "bare", func(ctx hub.Context, in json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{"event":"bare"}`), nil
	})
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	for _, s := range []struct{ name, send, want string }{
		{"one_argument_is_the_payload", `421["args",{"a":1}]`, `431[{"a":1}]`},
		{"several_are_an_array", `422["args",1,"two",{"3":3}]`, `432[[1,"two",{"3":3}]]`},
		{"none_is_the_zero_input", `423["echo"]`, `42["exception",{"status":"error","message":"field \"text\" fails \"required\"","code":"INVALID_MESSAGE"}]`},
		{"returned_event_is_emitted_not_acked", `424["reply",{"x":true}]`, `42["replied",{"x":true}]`},
		{"returned_event_without_data_carries_null", `425["bare"]`, `42["bare",null]`},
		{"returned_event_without_ack_is_emitted_too", `42["reply","n"]`, `42["replied","n"]`},
		{"other_results_without_ack_are_dropped", `42["args",1]` + "\n" + `429["args",2]`, `439[2]`},
		{"handler_error_is_an_exception_not_an_ack", `426["fail"]`, `42["exception",{"status":"error","message":"not yours","code":"FORBIDDEN"}]`},
		{"join_is_acked", `427["join","topic:n"]`, `437[]`},
		{"forbidden_join_is_an_exception", `428["join","topic:secret"]`, `42["exception",{"status":"error","message":"not allowed to join this room","code":"FORBIDDEN"}]`},
	} {
		t.Run(s.name, func(t *testing.T) {
			c.t = t
			for _, m := range strings.Split(s.send, "\n") {
				c.send(m)
			}
			c.expect(s.want)
		})
	}
}

// AllArguments mode hands a handler every argument and sends an array
// result as that many arguments.
func TestAllArgumentsMode(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Mode = AllArguments }, nil)
	hub.Handle(e.main, "spread", func(ctx hub.Context, in json.RawMessage) (struct{}, error) {
		return struct{}{}, echoBack(ctx, in)
	})
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	c.send(`421["args",1,"<two>",{"3":[true]}]`)
	c.expect(`431[1,"<two>",{"3":[true]}]`)
	c.send(`422["args"]`)
	c.expect(`432[]`)
	c.send(`42["spread",{"a":1},[2]]`)
	c.expect(`42["spread-back",{"a":1},[2]]`)
	c.send(`453-["spread",{"_placeholder":true,"num":0},"mid",{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]`)
	c.sendBinary([]byte("a"))
	c.sendBinary([]byte("b"))
	c.sendBinary([]byte("c"))
	c.expect(`453-["spread-back",{"_placeholder":true,"num":0},"mid",{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]`)
	c.expect("bin:a")
	c.expect("bin:b")
	c.expect("bin:c")
}

// echoBack echoes a handler's arguments and attachments as
// "spread-back".
func echoBack(ctx hub.Context, args json.RawMessage) error {
	return Emit(ctx, "spread-back", Binary{JSON: args, Attachments: Attachments(ctx)})
}
