package adversarial

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// Frame header bits and opcodes (RFC 6455 section 5.2), for RawConn: the
// first byte of a frame is FIN, the three RSV bits and the opcode.
const (
	FIN  byte = 0x80
	RSV1 byte = 0x40
	RSV2 byte = 0x20
	RSV3 byte = 0x10

	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xa
)

// maxRawFrame bounds what RawConn accepts from the server: far above any
// frame a wsgate server sends, far below what would hurt the test.
const maxRawFrame = 1 << 20

// RawConn is a WebSocket connection spoken byte by byte, for what a client
// library refuses to send: unmasked frames, reserved bits and opcodes,
// floods of control frames, a header announcing a gigabyte. Frames are
// buffered until Flush. One goroutine may write (Send*, Flush) while
// another reads (ReadFrame and the Expect helpers).
type RawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// RawFrame is one frame from the server.
type RawFrame struct {
	// B0 is the frame's first byte: FIN, RSV bits and opcode.
	B0      byte
	Payload []byte
}

// Op returns the frame's opcode.
func (f RawFrame) Op() byte { return f.B0 & 0x0f }

// CloseCode returns a close frame's status code, 0 when it carries none.
func (f RawFrame) CloseCode() int {
	if f.Op() != OpClose || len(f.Payload) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(f.Payload))
}

// CloseReason returns a close frame's reason, the bytes after the code.
func (f RawFrame) CloseReason() string {
	if f.Op() != OpClose || len(f.Payload) < 2 {
		return ""
	}
	return string(f.Payload[2:])
}

// Envelope decodes a text frame as a wsgate.v1 envelope; ok is false for
// any other frame.
func (f RawFrame) Envelope() (Frame, bool) {
	var e Frame
	if f.Op() != OpText || json.Unmarshal(f.Payload, &e) != nil {
		return Frame{}, false
	}
	return e, true
}

func (f RawFrame) String() string {
	if f.Op() == OpClose {
		return fmt.Sprintf("close %d %q", f.CloseCode(), f.CloseReason())
	}
	return fmt.Sprintf("opcode %#x %q", f.Op(), f.Payload)
}

// DialRaw performs h's handshake by hand on a new TCP connection, with
// Dial's defaults, and reads the answer. Unlike Dial it honours h.Host, and
// sends h.Header as given however malformed (each value of a header on a
// line of its own). It returns the connection when the server upgraded,
// and the response either way; err says why there is no connection. The
// connection is closed when the test ends.
func (s *Server) DialRaw(t testing.TB, h Handshake) (*RawConn, *http.Response, error) {
	t.Helper()
	nc := s.Raw(t)
	hdr := http.Header{}
	var key [16]byte
	_, _ = rand.Read(key[:])
	hdr.Set("Upgrade", "websocket")
	hdr.Set("Connection", "Upgrade")
	hdr.Set("Sec-WebSocket-Version", "13")
	hdr.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key[:]))
	protocols := h.Subprotocols
	if protocols == nil {
		protocols = []string{"wsgate.v1"}
	}
	if len(protocols) > 0 {
		hdr.Set("Sec-WebSocket-Protocol", strings.Join(protocols, ", "))
	}
	switch h.Origin {
	case "":
		hdr.Set("Origin", s.Origin)
	case NoOrigin:
	default:
		hdr.Set("Origin", h.Origin)
	}
	if h.Token != "" {
		hdr.Set("Authorization", "Bearer "+h.Token)
	}
	for k, v := range h.Header {
		hdr[textproto.CanonicalMIMEHeaderKey(k)] = v
	}
	host := h.Host
	if host == "" {
		host = s.Addr
	}
	var req strings.Builder
	req.WriteString("GET /ws HTTP/1.1\r\nHost: " + host + "\r\n")
	for k, vs := range hdr {
		for _, v := range vs {
			req.WriteString(k + ": " + v + "\r\n")
		}
	}
	req.WriteString("\r\n")
	_ = nc.SetDeadline(time.Now().Add(Wait))
	if _, err := io.WriteString(nc, req.String()); err != nil {
		return nil, nil, fmt.Errorf("adversarial: write handshake: %w", err)
	}
	c := &RawConn{t: t, nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriterSize(nc, 64<<10)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("adversarial: read handshake answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, resp, fmt.Errorf("adversarial: not upgraded: %s", resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, resp, nil
}

// ConnectRaw upgrades by hand with token and the server's origin, and reads
// the welcome; any failure fails the test.
func (s *Server) ConnectRaw(t testing.TB, token string) *RawConn {
	t.Helper()
	c, _, err := s.DialRaw(t, Handshake{Token: token})
	if err != nil {
		t.Fatalf("adversarial: connect: %v", err)
	}
	if f := c.ReadFrame(); !strings.Contains(string(f.Payload), `"type":"welcome"`) {
		t.Fatalf("adversarial: first frame %v, want the welcome", f)
	}
	return c
}

// Send buffers one frame whose first byte is b0, masked as a client's
// frames must be.
func (c *RawConn) Send(b0 byte, payload []byte) {
	var hdr [14]byte
	h := appendLength(append(hdr[:0], b0), 0x80, len(payload))
	mask := [4]byte{0x5a, 0x17, 0xc3, 0x08}
	h = append(h, mask[:]...)
	_, _ = c.bw.Write(h)
	var chunk [512]byte
	for i := 0; i < len(payload); i += len(chunk) {
		part := payload[i:min(i+len(chunk), len(payload))]
		for j, b := range part {
			chunk[j] = b ^ mask[(i+j)&3]
		}
		_, _ = c.bw.Write(chunk[:len(part)])
	}
}

// SendUnmasked buffers one frame without a mask, which no client may send.
func (c *RawConn) SendUnmasked(b0 byte, payload []byte) {
	_, _ = c.bw.Write(appendLength([]byte{b0}, 0, len(payload)))
	_, _ = c.bw.Write(payload)
}

// SendBytes buffers b as it is: a frame header alone, for instance.
func (c *RawConn) SendBytes(b []byte) { _, _ = c.bw.Write(b) }

// appendLength appends the second byte of a header (maskBit and the length
// code) and the extended length.
func appendLength(b []byte, maskBit byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, maskBit|byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
}

// Flush sends what is buffered. An error means the server no longer reads,
// which is what a flood ends with.
func (c *RawConn) Flush() error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(Wait))
	return c.bw.Flush()
}

// Close closes the TCP connection, without a close frame.
func (c *RawConn) Close() { _ = c.nc.Close() }

// Next returns the next frame from the server, or the error that ended the
// wait of at most d. A masked server frame is an error.
func (c *RawConn) Next(d time.Duration) (RawFrame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return RawFrame{}, err
	}
	if hdr[1]&0x80 != 0 {
		return RawFrame{}, errors.New("adversarial: the server masked a frame")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err := io.ReadFull(c.br, x[:]); err != nil {
			return RawFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err := io.ReadFull(c.br, x[:]); err != nil {
			return RawFrame{}, err
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	if n > maxRawFrame {
		return RawFrame{}, fmt.Errorf("adversarial: a server frame of %d bytes", n)
	}
	f := RawFrame{B0: hdr[0], Payload: make([]byte, n)}
	_, err := io.ReadFull(c.br, f.Payload)
	return f, err
}

// ReadFrame returns the next frame, failing the test after Wait or if the
// connection ends.
func (c *RawConn) ReadFrame() RawFrame {
	c.t.Helper()
	f, err := c.Next(Wait)
	if err != nil {
		c.t.Fatalf("adversarial: read: %v", err)
	}
	return f
}

// ExpectClose reads until the server's close frame and checks its code. It
// returns the close frame and the frames that came before it.
func (c *RawConn) ExpectClose(code int) (RawFrame, []RawFrame) {
	c.t.Helper()
	var before []RawFrame
	for range 100_000 {
		f, err := c.Next(Wait)
		if err != nil {
			c.t.Fatalf("adversarial: no close frame (%v) after %d frames, want close %d", err, len(before), code)
		}
		if f.Op() != OpClose {
			before = append(before, f)
			continue
		}
		if f.CloseCode() != code {
			c.t.Fatalf("close %d %q, want close %d", f.CloseCode(), f.CloseReason(), code)
		}
		return f, before
	}
	c.t.Fatalf("adversarial: no close frame among 100,000 frames, want close %d", code)
	return RawFrame{}, nil
}

// ExpectEnd checks that the server ends the TCP connection, without
// another frame, within Wait: nothing may follow a close frame.
func (c *RawConn) ExpectEnd() {
	c.t.Helper()
	f, err := c.Next(Wait)
	var ne net.Error
	switch {
	case err == nil:
		c.t.Fatalf("a frame after the close: %v", f)
	case errors.As(err, &ne) && ne.Timeout():
		c.t.Fatalf("the server kept the connection open %s after its close frame", Wait)
	}
}

// AnswerClose sends the client's half of the close handshake, a close
// frame with the server's code, and then shuts down the sending side of
// the TCP connection: the client sends nothing more.
func (c *RawConn) AnswerClose(closeFrame RawFrame) {
	c.t.Helper()
	c.Send(FIN|OpClose, binary.BigEndian.AppendUint16(nil, uint16(closeFrame.CloseCode())))
	_ = c.Flush() // the server may already have gone
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
