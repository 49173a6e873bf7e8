package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The load generator's WebSocket client is hand-rolled on purpose: no
// goroutine per connection, one epoll loop (poller.go) reading every socket
// and a frame parser per connection, so that 10,000 connections in one
// process leave as much of the two cores as possible to the server under
// test. It speaks just enough RFC 6455 for the job:
// masked text frames out; unmasked frames, fragments, ping and close in.

// dialect is how one contender's clients authenticate, wait to be ready and
// phrase an echo request.
type dialect struct {
	path        string // request path of the upgrade; "/ws" when empty
	subprotocol string // offered in Sec-WebSocket-Protocol, if any
	bearer      bool   // send the token in Authorization
	// hello is sent right after the upgrade (Centrifuge's connect command).
	hello func(token string) []byte
	// waitFirst: setup ends with the server's first message (wsgate's
	// welcome, Centrifuge's connect reply), not with the 101.
	waitFirst bool
	// echo builds the request whose answer carries "ets":ts back; nil when
	// the contender does not answer requests.
	echo func(id uint64, ts int64) []byte
	// pongJSON answers an application-level "{}" ping with "{}" (Centrifuge).
	pongJSON bool
	// sio: the connection speaks Socket.IO v5 over Engine.IO v4 (sio.go):
	// hello is the CONNECT, sent when the Engine.IO open packet arrives,
	// and the connection is ready at the CONNECT's answer.
	sio bool
}

var dialects = map[string]*dialect{
	"bare":          {},
	"bare-detached": {},
	"naive": {
		bearer: true,
		echo:   func(_ uint64, ts int64) []byte { return fmt.Appendf(nil, `{"ets":%d}`, ts) },
	},
	"melody": {
		bearer: true,
		echo:   func(_ uint64, ts int64) []byte { return fmt.Appendf(nil, `{"ets":%d}`, ts) },
	},
	"wsgate": {
		subprotocol: "wsgate.v1",
		bearer:      true,
		waitFirst:   true,
		echo: func(id uint64, ts int64) []byte {
			return fmt.Appendf(nil, `{"type":"event","id":%d,"event":"echo","data":{"ets":%d}}`, id, ts)
		},
	},
	"centrifuge": {
		hello: func(tok string) []byte {
			return fmt.Appendf(nil, `{"id":1,"connect":{"token":%q,"name":"bench"}}`, tok)
		},
		waitFirst: true,
		pongJSON:  true,
		echo: func(id uint64, ts int64) []byte {
			return fmt.Appendf(nil, `{"id":%d,"rpc":{"method":"echo","data":{"ets":%d}}}`, id+2, ts)
		},
	},
	"socketio-node":   sioDialect,
	"wsgate-socketio": sioDialect,
}

const (
	opCont  = 0x0
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xa

	maxMessage = 1 << 20
)

type client struct {
	fd    int // owned by the client once the handshake is over; see dial
	d     *dialect
	sink  *sink
	first chan struct{} // closed at the first message (by the poller)
	hello []byte        // Socket.IO: the CONNECT to send at the open packet
	// why says why the server ended a Socket.IO connection during setup;
	// written before first is closed, read after.
	why   string
	echoC chan int64   // "ets" values answered, for the RTT phase
	gone  atomic.Bool  // the connection is over
	pongs atomic.Int64 // Socket.IO: Engine.IO pings answered

	closeOnce sync.Once
	wmu       sync.Mutex // guards wbuf and writes to fd
	wbuf      []byte

	// Owned by the poller goroutine (by dial before registration).
	pending []byte // bytes of an incomplete frame
	msg     []byte // a fragmented message being assembled
	fragged bool
}

var wsGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

// dial connects to ws://addr/ws, performs the handshake as d says, hands
// the socket to p and returns once the connection is ready (see dialect).
//
// After the handshake the client keeps a duplicate of the socket's file
// descriptor and closes the net.Conn, so the socket leaves Go's poller and
// is read only by p's epoll loop: one read(2) per wake-up and no goroutine
// per connection.
func dial(addr string, d *dialect, token string, s *sink, p *poller, timeout time.Duration) (*client, error) {
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := &client{fd: -1, d: d, sink: s, first: make(chan struct{}), echoC: make(chan int64, 1)}
	if d.sio {
		c.hello = d.hello(token)
	}
	br := bufio.NewReaderSize(conn, 4096)
	if err := handshake(conn, br, addr, token, d, deadline); err != nil {
		return nil, err
	}
	if c.fd, err = detach(conn); err != nil {
		return nil, err
	}
	// Frames the server sent right behind the 101 (wsgate's welcome) may
	// already sit in br.
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if !c.consume(b) {
			c.close()
			return nil, c.closedErr()
		}
	}
	if err := p.add(c); err != nil {
		c.close()
		return nil, err
	}
	if d.hello != nil && !d.sio {
		if err := c.write(opText, d.hello(token)); err != nil {
			c.close()
			return nil, err
		}
	}
	if d.waitFirst {
		select {
		case <-c.first:
		case <-time.After(time.Until(deadline)):
			c.close()
			return nil, errors.New("no first message from the server")
		}
		if c.gone.Load() {
			return nil, c.closedErr()
		}
	}
	return c, nil
}

// closedErr says why the server ended the connection during setup.
func (c *client) closedErr() error {
	if c.why != "" {
		return errors.New(c.why)
	}
	return errors.New("server closed the connection after the upgrade")
}

// detach returns a non-blocking duplicate of conn's descriptor; the caller
// closes conn.
func detach(conn net.Conn) (int, error) {
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(f uintptr) { fd, derr = syscall.Dup(int(f)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

func handshake(conn net.Conn, br *bufio.Reader, addr, token string, d *dialect, deadline time.Time) error {
	_ = conn.SetDeadline(deadline)
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(k[8:], rand.Uint64())
	key := base64.StdEncoding.EncodeToString(k[:])
	var b bytes.Buffer
	path := d.path
	if path == "" {
		path = "/ws"
	}
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: http://%s\r\n", path, addr, key, addr)
	if d.subprotocol != "" {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", d.subprotocol)
	}
	if d.bearer {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	b.WriteString("\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake: HTTP %d", resp.StatusCode)
	}
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(wsGUID)
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h.Sum(nil)) {
		return errors.New("handshake: bad Sec-WebSocket-Accept")
	}
	return nil
}

// write sends one masked frame.
func (c *client) write(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.gone.Load() {
		return net.ErrClosed
	}
	b := appendFrame(c.wbuf[:0], true, op, payload, rand.Uint32())
	c.wbuf = b
	// The socket is non-blocking; the generator's frames are small, so a
	// full send buffer is rare and worth a short wait, not a poller.
	deadline := time.Now().Add(10 * time.Second)
	for len(b) > 0 {
		n, err := syscall.Write(c.fd, b)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
			if time.Now().After(deadline) {
				return os.ErrDeadlineExceeded
			}
			time.Sleep(time.Millisecond)
		case err != nil:
			return err
		default:
			b = b[n:]
		}
	}
	return nil
}

// appendFrame appends one client frame, masked with mask, to b.
func appendFrame(b []byte, fin bool, op byte, payload []byte, mask uint32) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = binary.BigEndian.AppendUint32(b, mask)
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mask)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= m[i&3]
	}
	return b
}

// close ends the connection once; safe from any goroutine.
func (c *client) close() {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		c.gone.Store(true)
		if c.fd >= 0 {
			syscall.Close(c.fd)
		}
		c.wmu.Unlock()
	})
}

// consume parses the frames in b (after any pending partial frame) and
// keeps an incomplete tail for later. It reports false when the connection
// is over. Only the poller goroutine calls it once the client is registered.
func (c *client) consume(b []byte) bool {
	if len(c.pending) > 0 {
		c.pending = append(c.pending, b...)
		b = c.pending
	}
	for {
		fin, op, p, n, ok := parseFrame(b)
		if !ok {
			break
		}
		b = b[n:]
		switch op {
		case opPing:
			if c.write(opPong, p) != nil {
				return false
			}
		case opPong:
		case opClose:
			if len(p) >= 2 {
				_ = c.write(opClose, p[:2])
			}
			return false
		case opCont:
			c.msg = append(c.msg, p...)
			if fin {
				c.fragged = false
				ok := c.onMessage(c.msg)
				c.msg = c.msg[:0]
				if !ok {
					return false
				}
			}
		default:
			if !fin {
				c.fragged = true
				c.msg = append(c.msg[:0], p...)
				continue
			}
			if !c.onMessage(p) {
				return false
			}
		}
	}
	if len(b) > maxMessage {
		return false
	}
	// b may alias pending: copy moves the tail to the front safely.
	c.pending = c.pending[:copy(c.pending[:cap(c.pending)], b)]
	if len(c.pending) < len(b) {
		c.pending = append(c.pending[:0:0], b...)
	}
	return true
}

// parseFrame decodes the frame at the start of b; ok is false when b does
// not hold a whole frame yet. Masked frames are unmasked in place.
func parseFrame(b []byte) (fin bool, op byte, p []byte, n int, ok bool) {
	if len(b) < 2 {
		return
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0f
	masked := b[1]&0x80 != 0
	size := uint64(b[1] & 0x7f)
	h := 2
	switch size {
	case 126:
		if len(b) < 4 {
			return
		}
		size, h = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return
		}
		size, h = binary.BigEndian.Uint64(b[2:10]), 10
	}
	var m []byte
	if masked {
		if len(b) < h+4 {
			return
		}
		m, h = b[h:h+4], h+4
	}
	if size > maxMessage || uint64(len(b)-h) < size {
		return
	}
	p = b[h : h+int(size)]
	if masked {
		for i := range p {
			p[i] ^= m[i&3]
		}
	}
	return fin, op, p, h + int(size), true
}

// markFirst closes first once; only the owner of the parse state calls it.
func (c *client) markFirst() {
	select {
	case <-c.first:
	default:
		close(c.first)
	}
}

var (
	keyBTS = []byte(`"bts":`)
	keySeq = []byte(`"seq":`)
	keyETS = []byte(`"ets":`)
)

// onMessage records every broadcast in p (Centrifuge may put several in one
// frame, one per line) and hands an echo answer to the RTT phase. It
// reports false when the connection is over.
func (c *client) onMessage(p []byte) bool {
	now := time.Now().UnixNano()
	if c.d.sio {
		return c.onSIO(p, now)
	}
	c.markFirst()
	if c.d.pongJSON && len(p) == 2 && p[0] == '{' && p[1] == '}' {
		_ = c.write(opText, p)
		return true
	}
	c.recordBroadcasts(p, now)
	c.onEchoAnswer(p)
	return true
}

// recordBroadcasts hands every broadcast payload in p, found by its send
// timestamp "bts", to the sink.
func (c *client) recordBroadcasts(p []byte, now int64) { c.sink.record(p, now) }

// record counts every broadcast payload in p, found by its send timestamp
// "bts", as delivered at now.
func (s *sink) record(p []byte, now int64) {
	rest := p
	for {
		i := bytes.Index(rest, keyBTS)
		if i < 0 {
			break
		}
		rest = rest[i+len(keyBTS):]
		bts, _ := parseInt(rest)
		seq := int64(-1)
		if j := bytes.Index(rest, keySeq); j >= 0 {
			seq, _ = parseInt(rest[j+len(keySeq):])
		}
		s.delivered(seq, now, bts)
	}
}

// onEchoAnswer hands the "ets" of an echo answer in p to the RTT phase.
func (c *client) onEchoAnswer(p []byte) {
	if i := bytes.Index(p, keyETS); i >= 0 {
		if ts, ok := parseInt(p[i+len(keyETS):]); ok {
			select {
			case c.echoC <- ts:
			default:
			}
		}
	}
}

// parseInt reads the unsigned decimal at the start of b.
func parseInt(b []byte) (int64, bool) {
	var v int64
	n := 0
	for ; n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	return v, n > 0
}
