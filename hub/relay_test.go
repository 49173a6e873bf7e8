package hub

import (
	"bytes"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/protocol"
)

func TestRelayCarrier(t *testing.T) {
	msg := protocol.Message{Kind: protocol.MsgEvent, Event: "said", Room: "r", Data: []byte(`{"a":1}`), Binary: [][]byte{{1, 2}}}
	t.Run("carrier_round_trips_after_the_attachments", func(t *testing.T) {
		carrier := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		rl, err := parseRelay(appendRelayMessage(nil, "c1", &msg, carrier))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rl.carrier, carrier) || rl.except != "c1" || rl.msg.Event != "said" || len(rl.msg.Binary) != 1 {
			t.Fatalf("parsed %+v", rl)
		}
	})
	t.Run("no_tracer_means_an_empty_carrier", func(t *testing.T) {
		rl, err := parseRelay(appendRelayMessage(nil, "", &msg, nil))
		if err != nil || len(rl.carrier) != 0 {
			t.Fatalf("carrier %q, err %v", rl.carrier, err)
		}
	})
	refused := map[string][]byte{
		"overlong_carrier":  appendRelayMessage(nil, "", &msg, []byte(strings.Repeat("x", MaxTraceCarrier+1))),
		"truncated_carrier": func() []byte { p := appendRelayMessage(nil, "", &msg, []byte("abc")); return p[:len(p)-1] }(),
		"missing_carrier":   func() []byte { p := appendRelayMessage(nil, "", &msg, nil); return p[:len(p)-1] }(),
		"trailing_bytes":    append(appendRelayMessage(nil, "", &msg, []byte("abc")), 0),
		"previous_version":  func() []byte { p := appendRelayMessage(nil, "", &msg, nil); p[0] = relayVersion - 1; return p }(),
	}
	for name, p := range refused {
		t.Run(name+"_is_refused", func(t *testing.T) {
			if _, err := parseRelay(p); err == nil {
				t.Fatal("parsed")
			}
		})
	}
}
