package sio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzPacket feeds a text message and the binary messages cut from bins
// (at each 0xff byte) to a Decoder. It checks that decoding never panics,
// that errors wrap ErrInvalid and leave nothing pending, that an accepted
// packet is within the limits, holds valid JSON and is no larger than its
// input, and that it re-encodes to frames that decode to the same packet.
func FuzzPacket(f *testing.F) {
	for _, s := range [][2]string{
		{"0", ""}, {`0{"token":"123"}`, ""}, {"0/custom,", ""}, {"0/custom", ""}, {"1/admin,", ""},
		{`2["foo"]`, ""}, {`2/admin,12["bar",1,{"a":[null]}]`, ""}, {`2[42,"x"]`, ""}, {`3456[]`, ""},
		{`4{"message":"Not authorized"}`, ""}, {`2["a\"b\u00e9"]`, ""}, {"2 [ \"m\" , { \"a\" : 1 } ]", ""},
		{`52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "\x01\x02\x03\xff\x04\x05\x06"},
		{`61-15["bar",{"_placeholder":true,"num":0}]`, "\x01"},
		{`51-["x",{"a":[{"num":0,"_placeholder":true}]}]`, "z"},
		{`51-["x",{"_placeholder":true,"num":"toString"}]`, "z"},
		{`59007199254740992-["x"]`, ""}, {`2[{"toString":"x"}]`, ""}, {`2["connect"]`, ""}, {"abc", ""}, {"2{}", ""},
		{`2abc["message-with-ack",1]`, ""}, {`2["x",` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `]`, ""},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	lim := Limits{MaxAttachmentBytes: 64}
	f.Fuzz(func(t *testing.T, text, bins []byte) {
		d := NewDecoder(lim)
		p, ok, err := d.DecodeText(text)
		parts := bytes.Split(bins, []byte{0xff})
		for i := 0; err == nil && !ok && d.Pending() && i < len(parts); i++ {
			p, ok, err = d.DecodeBinary(parts[i])
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if ok || d.Pending() {
				t.Fatalf("refusal left ok=%v pending=%v", ok, d.Pending())
			}
			return
		}
		if !ok {
			return // attachments still due
		}
		checkAccepted(t, p, len(text)+len(bins), lim)
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("accepted packet does not encode: %v", err)
		}
		if enc.Text[0] != '4' {
			t.Fatalf("encoded text %q is not an Engine.IO message", enc.Text)
		}
		again := NewDecoder(lim)
		q, ok, err := again.DecodeText(enc.Text[1:])
		for i := 0; err == nil && !ok && i < len(enc.Attachments); i++ {
			q, ok, err = again.DecodeBinary(enc.Attachments[i])
		}
		if err != nil || !ok {
			t.Fatalf("re-encoded %q does not decode: ok=%v err=%v", enc.Text, ok, err)
		}
		if !samePacket(p, q) {
			t.Fatalf("round trip changed the packet:\n%+v\n%+v", p, q)
		}
	})
}

func checkAccepted(t *testing.T, p Packet, inputLen int, lim Limits) {
	t.Helper()
	size := len(p.Data) + len(p.Event)
	for i, a := range p.Args {
		size += len(a)
		if !json.Valid(a) || !json.Valid(p.ArgJSON(i)) {
			t.Fatalf("argument %d is not valid JSON: %s", i, a)
		}
	}
	for _, a := range p.Attachments {
		size += len(a)
	}
	if size > inputLen {
		t.Fatalf("decoded %d bytes from %d bytes of input", size, inputLen)
	}
	if p.Data != nil && !json.Valid(p.Data) {
		t.Fatalf("data is not valid JSON: %s", p.Data)
	}
	if len(p.Attachments) > DefaultMaxAttachments {
		t.Fatalf("%d attachments, limit %d", len(p.Attachments), DefaultMaxAttachments)
	}
	if p.Namespace == "" || p.Namespace[0] != '/' || len(p.Namespace) > DefaultMaxNamespace {
		t.Fatalf("namespace %q", p.Namespace)
	}
	if p.Type.IsEvent() && (IsReserved(p.Event) || len(p.Event) > DefaultMaxEventName) {
		t.Fatalf("event name %q", p.Event)
	}
}

func samePacket(a, b Packet) bool {
	if a.Type != b.Type || a.Namespace != b.Namespace || a.ID != b.ID || a.HasID != b.HasID ||
		a.Event != b.Event || a.NumericEvent != b.NumericEvent || !bytes.Equal(a.Data, b.Data) ||
		len(a.Args) != len(b.Args) || len(a.Attachments) != len(b.Attachments) {
		return false
	}
	for i := range a.Args {
		if !bytes.Equal(a.Args[i], b.Args[i]) {
			return false
		}
	}
	for i := range a.Attachments {
		if !bytes.Equal(a.Attachments[i], b.Attachments[i]) {
			return false
		}
	}
	return true
}

// FuzzScanJSON checks the hand-written JSON scanner against encoding/json:
// both accept the same texts, except that the scanner also refuses nesting
// over its limit and placeholder objects outside a binary packet.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{
		`[]`, `{}`, `[1,-0.5e+3,"a\u00e9\n",true,false,null,{"a":[{}]}]`, `{"a":1,}`, `[01]`, `"\x"`, `1.`, `-`,
		` [ 1 , 2 ] `, `{"_placeholder":true,"num":0}`, `"\ud800"`, "\"\x7f\"", `[1]x`, `1e`, `tru`, `{"a" 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := scanner{data: data, maxDepth: 32}
		var err error
		if start := s.skipSpace(0); start == len(data) {
			err = invalid("empty")
		} else {
			err = s.finish(s.value(start, 0))
		}
		if err != nil && (strings.Contains(err.Error(), "nesting") || strings.Contains(err.Error(), "placeholder")) {
			return
		}
		if valid := json.Valid(data); valid != (err == nil) {
			t.Fatalf("scanner err=%v, encoding/json valid=%v for %q", err, valid, data)
		}
	})
}
