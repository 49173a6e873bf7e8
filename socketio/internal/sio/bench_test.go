package sio

import (
	"encoding/json"
	"testing"
)

func BenchmarkDecodeEvent(b *testing.B) {
	text := []byte(`2/chat,12["message:send",{"conversationId":"6f1c2d3e-0000-4000-8000-000000000001","text":"hello there"}]`)
	d := NewDecoder(Limits{})
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := d.DecodeText(text); err != nil || !ok {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBinaryEvent(b *testing.B) {
	text := []byte(`51-["upload",{"name":"a.png","data":{"_placeholder":true,"num":0}}]`)
	att := make([]byte, 4096)
	d := NewDecoder(Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.DecodeText(text); err != nil {
			b.Fatal(err)
		}
		if _, ok, err := d.DecodeBinary(att); err != nil || !ok {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeBroadcast is the fan-out path: data already marshalled once
// by the hub, one Encode for every recipient.
func BenchmarkEncodeBroadcast(b *testing.B) {
	data := json.RawMessage(`{"conversationId":"6f1c2d3e-0000-4000-8000-000000000001","from":"u1","text":"hello there"}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		p := Packet{Type: Event, Namespace: "/chat", Event: "message:new", Args: []json.RawMessage{data}}
		var err error
		if buf, err = p.AppendText(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

type chatMessage struct {
	ConversationID string `json:"conversationId"`
	From           string `json:"from"`
	Text           string `json:"text"`
}

func BenchmarkNewEventStruct(b *testing.B) {
	m := chatMessage{ConversationID: "6f1c2d3e-0000-4000-8000-000000000001", From: "u1", Text: "hello there"}
	b.ReportAllocs()
	for b.Loop() {
		p, err := NewEvent("/chat", "message:new", m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewEventBinary(b *testing.B) {
	v := map[string]any{"name": "a.png", "data": make([]byte, 4096)}
	b.ReportAllocs()
	for b.Loop() {
		p, err := NewEvent("/", "upload", v)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
