package eio

import "testing"

var benchBody = []byte(`42["message",{"text":"hello","room":"conversation:1"}]` + "\x1e" + `3` + "\x1e" + `42["typing",{"room":"conversation:1"}]`)

func BenchmarkDecodePayload(b *testing.B) {
	dst := make([]Packet, 0, 4)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = DecodePayload(dst[:0], benchBody, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`42["message",{"text":"hello","room":"conversation:1"}]`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeFrame(frame, false, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPayload(b *testing.B) {
	packets := []Packet{
		{Type: Message, Data: []byte(`2["message",{"text":"hello","room":"conversation:1"}]`)},
		{Type: Ping},
		{Type: Message, Binary: true, Data: make([]byte, 256)},
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPayload(buf[:0], packets...)
	}
}
