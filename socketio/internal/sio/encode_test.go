package sio

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/wsgate/wsgate/socketio/internal/eio"
)

func raws(args ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(args))
	for i, a := range args {
		out[i] = json.RawMessage(a)
	}
	return out
}

const (
	ph0 = `{"_placeholder":true,"num":0}`
	ph1 = `{"_placeholder":true,"num":1}`
)

func TestAppendText(t *testing.T) {
	cases := []struct {
		name string
		p    Packet
		want string
	}{
		// The protocol document's examples, with the Engine.IO "4" in front.
		{"connect_main", Packet{Type: Connect}, "40"},
		{"connect_custom_with_sid", NewConnect("/admin", "oSO0OpakMV_3jnilAAAA"), `40/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}`},
		{"connect_error", Packet{Type: ConnectError, Data: json.RawMessage(`{"message":"Not authorized"}`)}, `44{"message":"Not authorized"}`},
		{"event", Packet{Type: Event, Event: "foo"}, `42["foo"]`},
		{"event_custom_namespace", Packet{Type: Event, Namespace: "/admin", Event: "bar"}, `42/admin,["bar"]`},
		{"event_with_ack_id", Packet{Type: Event, Event: "foo", ID: 12, HasID: true}, `4212["foo"]`},
		{"ack_custom_namespace", Packet{Type: Ack, Namespace: "/admin", ID: 13, HasID: true, Args: raws(`"bar"`)}, `43/admin,13["bar"]`},
		{"ack_without_arguments", Packet{Type: Ack, ID: 12, HasID: true}, `4312[]`},
		{"disconnect_main", NewDisconnect(""), "41"},
		{"disconnect_custom", NewDisconnect("/admin"), "41/admin,"},
		{"binary_event", Packet{Type: Event, Event: "baz", Args: raws(ph0), Attachments: [][]byte{{1, 2, 3, 4}}}, `451-["baz",` + ph0 + `]`},
		{"binary_event_two_attachments", Packet{Type: BinaryEvent, Namespace: "/admin", Event: "baz", Args: raws(ph0, ph1), Attachments: [][]byte{{1, 2}, {3, 4}}}, `452-/admin,["baz",` + ph0 + `,` + ph1 + `]`},
		{"binary_ack", Packet{Type: Ack, ID: 15, HasID: true, Args: raws(`"bar"`, ph0), Attachments: [][]byte{{1, 2, 3, 4}}}, `461-15["bar",` + ph0 + `]`},
		{"binary_type_without_attachments_is_plain", Packet{Type: BinaryEvent, Event: "x"}, `42["x"]`},
		{"numeric_event_name", Packet{Type: Event, Event: "42", NumericEvent: true, Args: raws(`1`)}, `42[42,1]`},
		// What the official suite expects the reference fixture to send.
		{"suite_auth_event", Packet{Type: Event, Event: "auth", Args: raws(`{}`)}, `42["auth",{}]`},
		{"suite_auth_event_custom", Packet{Type: Event, Namespace: "/custom", Event: "auth", Args: raws(`{"token":"abc"}`)}, `42/custom,["auth",{"token":"abc"}]`},
		{"suite_message_back", Packet{Type: Event, Event: "message-back", Args: raws(`1`, `"2"`, `{"3":[true]}`)}, `42["message-back",1,"2",{"3":[true]}]`},
		{"suite_ack", Packet{Type: Ack, ID: 456, HasID: true, Args: raws(`1`, `"2"`, `{"3":[false]}`)}, `43456[1,"2",{"3":[false]}]`},
		{"suite_binary_ack", Packet{Type: Ack, ID: 789, HasID: true, Args: raws(ph0, ph1), Attachments: [][]byte{{1, 2, 3}, {4, 5, 6}}}, `462-789[` + ph0 + `,` + ph1 + `]`},
		{"suite_invalid_namespace", mustConnectError(t, "/random", "Invalid namespace", nil), `44/random,{"message":"Invalid namespace"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.AppendText(nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func mustConnectError(t *testing.T, nsp, msg string, data any) Packet {
	t.Helper()
	p, err := NewConnectError(nsp, msg, data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppendTextRefuses(t *testing.T) {
	cases := []struct {
		name string
		p    Packet
	}{
		{"reserved_event_name", Packet{Type: Event, Event: "disconnect"}},
		{"namespace_without_slash", Packet{Type: Event, Namespace: "admin", Event: "x"}},
		{"namespace_with_comma", Packet{Type: Event, Namespace: "/a,b", Event: "x"}},
		{"ack_without_id", Packet{Type: Ack}},
		{"ack_id_over_2^53-1", Packet{Type: Ack, ID: MaxAckID + 1, HasID: true}},
		{"numeric_event_name_not_an_integer", Packet{Type: Event, Event: "1.5", NumericEvent: true}},
		{"disconnect_with_payload", Packet{Type: Disconnect, Data: json.RawMessage(`{}`)}},
		{"connect_error_without_payload", Packet{Type: ConnectError}},
		{"connect_with_arguments", Packet{Type: Connect, Args: raws(`1`)}},
		{"connect_with_ack_id", Packet{Type: Connect, HasID: true}},
		{"connect_with_attachments", Packet{Type: Connect, Attachments: [][]byte{{1}}}},
		{"unknown_type", Packet{Type: 9}},
		{"event_with_data_instead_of_args", Packet{Type: Event, Event: "x", Data: json.RawMessage(`{}`)}},
		{"more_than_64_attachments", Packet{Type: Event, Event: "x", Attachments: make([][]byte, 65)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("kept")
			got, err := tc.p.AppendText(dst)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %s, %v; want ErrInvalid", got, err)
			}
			if string(got) != "kept" {
				t.Fatalf("a refused packet changed dst to %q", got)
			}
		})
	}
}

func TestAppendQuotedMatchesJSONStringify(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"<b>&amp;</b>", `"<b>&amp;</b>"`}, // no HTML escaping, as JSON.stringify
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"é€😀\u2028", `"é€😀` + "\u2028" + `"`},
		{"bad\xffutf8", `"bad` + "\ufffd" + `utf8"`},
	}
	for _, tc := range cases {
		got := string(appendQuoted(nil, tc.in))
		if got != tc.want {
			t.Errorf("appendQuoted(%q) = %s, want %s", tc.in, got, tc.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("appendQuoted(%q) = %s is not JSON: %v", tc.in, got, err)
		}
	}
}

func TestNewEvent(t *testing.T) {
	t.Run("arguments_are_marshalled_without_HTML_escaping", func(t *testing.T) {
		p, err := NewEvent("", "m", "<b>&", 1, map[string]int{"b": 2, "a": 1})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := p.AppendText(nil)
		if want := `42["m","<b>&",1,{"a":1,"b":2}]`; string(got) != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("raw_json_argument_is_kept", func(t *testing.T) {
		p, err := NewEvent("/chat", "m", json.RawMessage(`{"x":[1,2]}`))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := p.AppendText(nil)
		if want := `42/chat,["m",{"x":[1,2]}]`; string(got) != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("reserved_name_is_refused", func(t *testing.T) {
		if _, err := NewEvent("/", "connect"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
	t.Run("unmarshallable_argument_is_an_error", func(t *testing.T) {
		if _, err := NewEvent("/", "m", make(chan int)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
	t.Run("ack_with_binary_is_a_binary_ack", func(t *testing.T) {
		p, err := NewAck("/", 7, "ok", []byte{9})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := p.AppendText(nil)
		if want := `461-7["ok",` + ph0 + `]`; string(got) != want || p.Type != BinaryAck {
			t.Fatalf("got %s (%s), want %s", got, p.Type, want)
		}
	})
}

func TestNewConnectError(t *testing.T) {
	p := mustConnectError(t, "/", "Unauthorized", map[string]string{"code": "UNAUTHORIZED"})
	got, _ := p.AppendText(nil)
	if want := `44{"message":"Unauthorized","data":{"code":"UNAUTHORIZED"}}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := NewConnectError("/", "x", func() {}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unmarshallable data: err = %v, want ErrInvalid", err)
	}
}

// TestEncodeOnceServesEveryRecipient pins the broadcast path: one Encode,
// and every recipient's WebSocket frames and long-polling payload are built
// from the same bytes without encoding again.
func TestEncodeOnceServesEveryRecipient(t *testing.T) {
	p, err := NewEvent("/", "file", map[string]any{"name": "a", "data": []byte{1, 2, 3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := `451-["file",{"data":` + ph0 + `,"name":"a"}]`; string(enc.Text) != want {
		t.Fatalf("Text = %s, want %s", enc.Text, want)
	}
	if enc.Size() != len(enc.Text)+4 {
		t.Fatalf("Size = %d", enc.Size())
	}
	var payloads [][]byte
	for range 3 {
		packets := enc.Packets(nil)
		if &packets[0].Data[0] != &enc.Text[1] {
			t.Fatal("Packets copied the text")
		}
		payloads = append(payloads, eio.AppendPayload(nil, packets...))
	}
	want := `451-["file",{"data":` + ph0 + `,"name":"a"}]` + "\x1ebAQIDBA=="
	for _, pl := range payloads {
		if string(pl) != want {
			t.Fatalf("payload %q, want %q", pl, want)
		}
	}
	// A recipient decodes what was encoded once.
	d := NewDecoder(Limits{})
	got, ok, err := feed(d, string(enc.Text[1:]), string(enc.Attachments[0]))
	if err != nil || !ok || got.Event != "file" || !bytes.Equal(got.Attachments[0], []byte{1, 2, 3, 4}) {
		t.Fatalf("decoded %+v ok=%v err=%v", got, ok, err)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, text := range []string{
		`0`, `0{"token":"123"}`, `0/custom,`, `1/admin,`, `2["foo"]`, `2/admin,12["bar",1,{"a":[null]}]`,
		`3456[]`, `4/random,{"message":"Invalid namespace"}`, `2[42]`, `2["é\n"]`,
	} {
		p, ok, err := NewDecoder(Limits{}).DecodeText([]byte(text))
		if err != nil || !ok {
			t.Fatalf("%s: %v", text, err)
		}
		got, err := p.AppendText(nil)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if string(got[1:]) != text {
			t.Fatalf("re-encoded %s as %s", text, got[1:])
		}
	}
}
