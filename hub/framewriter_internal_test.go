package hub

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// writeText's framing, read back over a real loopback socket: every length
// encoding boundary, and frames on both sides of the batch buffer's size.
func TestWriteTextFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	defer server.Close()

	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 70000,
		batchBuffer - 4, batchBuffer - 3, batchBuffer, batchBuffer + 1, 3, 2}
	frames := make([][]byte, len(sizes))
	for i, n := range sizes {
		frames[i] = bytes.Repeat([]byte{byte('a' + i)}, n)
	}
	sc := &sharedConn{Conn: server}
	errc := make(chan error, 1)
	go func() { errc <- sc.writeText(frames) }()

	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(client)
	for i, want := range frames {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if hdr[0] != finBit|opText || hdr[1]&0x80 != 0 {
			t.Fatalf("frame %d: header %#x %#x", i, hdr[0], hdr[1])
		}
		n := uint64(hdr[1])
		switch n {
		case 126:
			var x [2]byte
			_, _ = io.ReadFull(br, x[:])
			n = uint64(binary.BigEndian.Uint16(x[:]))
			if n < 126 {
				t.Fatalf("frame %d: %d bytes in the 16-bit form", i, n)
			}
		case 127:
			var x [8]byte
			_, _ = io.ReadFull(br, x[:])
			n = binary.BigEndian.Uint64(x[:])
			if n <= 0xffff {
				t.Fatalf("frame %d: %d bytes in the 64-bit form", i, n)
			}
		}
		if n != uint64(len(want)) {
			t.Fatalf("frame %d: length %d, want %d", i, n, len(want))
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: payload differs", i)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	// A close frame written by coder/websocket's path ends data frames.
	if _, err := sc.Write([]byte{finBit | opClose, 2, 0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	if err := sc.writeText(frames[:1]); err != net.ErrClosed {
		t.Fatalf("writeText after a close frame = %v, want net.ErrClosed", err)
	}
}
