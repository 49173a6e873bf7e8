package hub_test

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// RFC 6455 on the server side (sections 5.2-5.5, 7.4), over a real
// loopback socket with frames written by hand: what the server answers to
// each case, and that no frame follows its close frame.
func TestRFC6455(t *testing.T) {
	e := newEnv(t, nil)
	tok := token(t, claims{sub: "rfc"})
	closeWith := func(code uint16, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, code), reason...)
	}
	cases := []struct {
		name  string
		send  func(rc *rawConn)
		want  []string // text payload fragments expected in order, "pong:<payload>" for pongs
		close int      // expected close code (0: none expected, the connection stays)
		echo  bool     // the server's close frame answers the client's
	}{
		{name: "ping_between_fragments_is_answered_and_the_message_completes",
			send: func(rc *rawConn) {
				rc.frame(false, opText, []byte(`{"type":"event","id":1,`))
				rc.frame(true, opPing, []byte("mid"))
				rc.frame(true, opCont, []byte(`"event":"nope"}`))
			},
			want: []string{"pong:mid", `"code":"UNKNOWN_EVENT"`}},
		{name: "unmasked_frame_closes_1002", send: func(rc *rawConn) { rc.unmaskedFrame(opText, []byte("{}")) }, close: 1002},
		{name: "close_1000_is_echoed_without_the_reason", send: func(rc *rawConn) { rc.frame(true, opClose, closeWith(1000, "bye")) }, close: 1000, echo: true},
		{name: "close_4000_is_echoed", send: func(rc *rawConn) { rc.frame(true, opClose, closeWith(4000, "")) }, close: 4000, echo: true},
		{name: "empty_close_is_answered_1000", send: func(rc *rawConn) { rc.frame(true, opClose, nil) }, close: 1000, echo: true},
		{name: "close_code_1005_closes_1002", send: func(rc *rawConn) { rc.frame(true, opClose, closeWith(1005, "")) }, close: 1002},
		{name: "close_code_999_closes_1002", send: func(rc *rawConn) { rc.frame(true, opClose, closeWith(999, "")) }, close: 1002},
		{name: "close_payload_of_one_byte_closes_1002", send: func(rc *rawConn) { rc.frame(true, opClose, []byte{3}) }, close: 1002},
		{name: "close_reason_not_utf8_closes_1007_and_is_not_echoed", send: func(rc *rawConn) { rc.frame(true, opClose, closeWith(1000, "\xff\xfe")) }, close: 1007},
		{name: "text_not_utf8_closes_1007", send: func(rc *rawConn) { rc.frame(true, opText, []byte{'"', 0xc3, 0x28, '"'}) }, close: 1007},
		{name: "binary_closes_1003", send: func(rc *rawConn) { rc.frame(true, 0x2, []byte{1, 2, 3}) }, close: 1003},
		{name: "fragmented_ping_closes_1002", send: func(rc *rawConn) { rc.frame(false, opPing, nil) }, close: 1002},
		{name: "ping_of_126_bytes_closes_1002", send: func(rc *rawConn) { rc.frame(true, opPing, make([]byte, 126)) }, close: 1002},
		{name: "reserved_opcode_closes_1002", send: func(rc *rawConn) { rc.frame(true, 0x3, nil) }, close: 1002},
		{name: "rsv1_without_compression_closes_1002", send: func(rc *rawConn) { rc.frame(true, opText|0x40, []byte("{}")) }, close: 1002},
		{name: "continuation_without_a_message_closes_1002", send: func(rc *rawConn) { rc.frame(true, opCont, []byte("{}")) }, close: 1002},
		{name: "text_inside_a_fragmented_message_closes_1002", send: func(rc *rawConn) {
			rc.frame(false, opText, []byte("{"))
			rc.frame(true, opText, []byte("{}"))
		}, close: 1002},
		{name: "message_over_the_limit_closes_1009", send: func(rc *rawConn) { rc.frame(true, opText, make([]byte, 65<<10)) }, close: 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // a failed connection is read for up to a second
			rc := e.dialRawTCP(tok)
			defer rc.nc.Close()
			if _, err := rc.readWelcome(); err != nil {
				t.Fatal(err)
			}
			tc.send(rc)
			if err := rc.flush(); err != nil {
				t.Fatal(err)
			}
			_ = rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			for _, want := range tc.want {
				op, p, err := rc.readFrame()
				if err != nil {
					t.Fatalf("waiting for %q: %v", want, err)
				}
				got := string(p)
				if op == opPong {
					got = "pong:" + got
				}
				if !strings.Contains(got, want) {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			if tc.close == 0 {
				return
			}
			op, p, err := rc.readFrame()
			if err != nil || op != opClose || len(p) < 2 {
				t.Fatalf("got op %#x %q, %v; want a close frame", op, p, err)
			}
			if code := int(binary.BigEndian.Uint16(p)); code != tc.close {
				t.Fatalf("close code %d, want %d", code, tc.close)
			}
			if strings.ContainsAny(string(p[2:]), "\xff\xfe") || (tc.close == 1000 && len(p) > 2) {
				t.Fatalf("close reason %q echoes the client", p[2:])
			}
			// Nothing follows the close frame: answer it (unless it was the
			// answer to ours) and see the server end the TCP connection.
			if !tc.echo {
				rc.frame(true, opClose, p[:2])
				_ = rc.flush()
			}
			if op, p, err := rc.readFrame(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the close frame: op %#x %q, %v; want EOF", op, p, err)
			}
		})
	}
}

// unmaskedFrame writes a final frame without a mask, as no client may.
func (rc *rawConn) unmaskedFrame(op byte, payload []byte) {
	_, _ = rc.bw.Write(append([]byte{0x80 | op, byte(len(payload))}, payload...))
}
