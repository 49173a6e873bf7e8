package adversarial

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/hub"
)

// TestFrameViolations sends what RFC 6455 forbids a client (sections
// 5.1-5.5, 7.4), each time wrapped around a message the server would act
// on: a call of a registered event carrying a marker. The server closes
// with the code the RFC asks for, never runs the call, never answers it,
// never puts the client's bytes in its close reason, and sends nothing
// after its close frame.
func TestFrameViolations(t *testing.T) {
	srv := Start(t, Config{})
	var calls atomic.Int32
	hub.Handle(srv.Hub, "echo", func(_ hub.Context, in string) (string, error) {
		calls.Add(1)
		return in, nil
	})
	const marker = "smuggled<script>"
	call := []byte(`{"type":"event","id":1,"event":"echo","data":"` + marker + `"}`)
	tests := violations(call, marker)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := srv.ConnectRaw(t, Token(t, jwt.MapClaims{"sub": tt.name})) // a user per case, like TestFloods
			tt.send(c)
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			closeFrame, before := c.ExpectClose(tt.code)
			if len(before) > 0 {
				t.Fatalf("answered before the close: %v", before)
			}
			if r := closeFrame.CloseReason(); strings.ContainsAny(r, "<\xff") || strings.Contains(r, "smuggled") || (tt.echo && r != "") {
				t.Fatalf("close reason %q repeats what the client sent", r)
			}
			if !tt.echo {
				c.AnswerClose(closeFrame)
			}
			c.ExpectEnd()
		})
	}
	t.Run("only_the_genuine_call_runs", func(t *testing.T) {
		c := srv.Connect(t, Token(t, nil))
		if f := c.Call(map[string]any{"type": "event", "event": "echo", "data": "genuine"}); f.Type != "ack" {
			t.Fatalf("a genuine call got %+v", f)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("the handler ran %d times; only the genuine call should have run it", n)
		}
	})
}

// violations returns the cases of TestFrameViolations: frames RFC 6455
// forbids, most of them wrapped around call, a message carrying marker.
func violations(call []byte, marker string) []violation {
	closeWith := func(code uint16, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, code), reason...)
	}
	tests := []violation{
		{name: "unmasked_frame_closes_1002", send: func(c *RawConn) { c.SendUnmasked(FIN|OpText, call) }, code: 1002},
		{name: "rsv1_without_compression_closes_1002", send: func(c *RawConn) { c.Send(FIN|RSV1|OpText, call) }, code: 1002},
		{name: "rsv2_closes_1002", send: func(c *RawConn) { c.Send(FIN|RSV2|OpText, call) }, code: 1002},
		{name: "rsv3_closes_1002", send: func(c *RawConn) { c.Send(FIN|RSV3|OpText, call) }, code: 1002},
		{name: "rsv1_on_a_ping_closes_1002", send: func(c *RawConn) { c.Send(FIN|RSV1|OpPing, nil) }, code: 1002},
		{name: "reserved_data_opcode_closes_1002", send: func(c *RawConn) { c.Send(FIN|0x3, call) }, code: 1002},
		{name: "reserved_control_opcode_closes_1002", send: func(c *RawConn) { c.Send(FIN|0xb, nil) }, code: 1002},
		{name: "fragmented_ping_closes_1002", send: func(c *RawConn) {
			c.Send(OpPing, []byte("a"))
			c.Send(FIN|OpContinuation, []byte("b"))
		}, code: 1002},
		{name: "ping_of_126_bytes_closes_1002", send: func(c *RawConn) { c.Send(FIN|OpPing, make([]byte, 126)) }, code: 1002},
		{name: "close_of_126_bytes_closes_1002", send: func(c *RawConn) {
			c.Send(FIN|OpClose, closeWith(1000, strings.Repeat("x", 124)))
		}, code: 1002},
		{name: "continuation_without_a_message_closes_1002", send: func(c *RawConn) { c.Send(FIN|OpContinuation, call) }, code: 1002},
		{name: "new_message_inside_a_fragmented_one_closes_1002", send: func(c *RawConn) {
			c.Send(OpText, call[:10])
			c.Send(FIN|OpText, call)
		}, code: 1002},
		{name: "binary_frame_closes_1003", send: func(c *RawConn) { c.Send(FIN|OpBinary, call) }, code: 1003},
		{name: "text_not_utf8_closes_1007", send: func(c *RawConn) {
			c.Send(FIN|OpText, []byte(strings.Replace(string(call), "smuggled", "\xff\xfe", 1)))
		}, code: 1007},
		{name: "utf16_surrogate_in_utf8_closes_1007", send: func(c *RawConn) {
			c.Send(FIN|OpText, []byte(strings.Replace(string(call), "smuggled", "\xed\xa0\x80", 1)))
		}, code: 1007},
		{name: "rune_cut_between_fragments_and_never_finished_closes_1007", send: func(c *RawConn) {
			c.Send(OpText, []byte(`{"type":"event","id":1,"event":"echo","data":"`+"\xc3"))
			c.Send(FIN|OpContinuation, []byte(`"}`))
		}, code: 1007},
		{name: "message_over_the_limit_closes_1009", send: func(c *RawConn) {
			c.Send(FIN|OpText, []byte(strings.Replace(string(call), marker, strings.Repeat("a", 65<<10), 1)))
		}, code: 1009},
		{name: "close_payload_of_one_byte_closes_1002", send: func(c *RawConn) { c.Send(FIN|OpClose, []byte{3}) }, code: 1002},
		{name: "close_reason_not_utf8_closes_1007", send: func(c *RawConn) {
			c.Send(FIN|OpClose, closeWith(1000, "\xff\xfe"+marker))
		}, code: 1007},
		{name: "close_with_markup_in_its_reason_is_echoed_without_it", send: func(c *RawConn) {
			c.Send(FIN|OpClose, closeWith(1000, marker))
		}, code: 1000, echo: true},
		{name: "a_call_after_the_close_is_not_run", send: func(c *RawConn) {
			c.Send(FIN|OpClose, closeWith(4000, ""))
			c.Send(FIN|OpText, call)
		}, code: 4000, echo: true},
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		tests = append(tests, violation{name: "close_code_" + strconv.Itoa(int(code)) + "_closes_1002", send: func(c *RawConn) {
			c.Send(FIN|OpClose, closeWith(code, ""))
		}, code: 1002})
	}
	return tests
}

// violation is one row of TestFrameViolations.
type violation struct {
	name string
	send func(c *RawConn)
	code int
	// echo: the client started the close, and the server's close frame
	// answers it, so the client has nothing to answer.
	echo bool
}
