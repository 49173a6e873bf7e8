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
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The soak's WebSocket client follows bench/cmd/loadgen's: no goroutine per
// connection, one epoll loop reading every socket, just enough RFC 6455 for
// the job, so that 10,000 connections leave the two cores to the server.
// It differs in what it tracks: why each connection ended, and whether it
// missed a broadcast.

const (
	opCont  = 0x0
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xa

	maxMessage = 1 << 20
)

// Why a connection is expected to end.
const (
	live    int32 = iota // ending would be unexpected
	leaving              // the soak closes it (reconnect churn, shutdown)
	slow                 // a slow consumer: the server should drop it
)

type conn struct {
	fd    int
	user  string
	first chan struct{} // closed at the first message
	state atomic.Int32  // live, leaving or slow
	gone  atomic.Bool

	closeOnce sync.Once
	wmu       sync.Mutex // guards wbuf and writes to fd
	wbuf      []byte

	// Owned by the poller goroutine (by dial before registration).
	pending []byte
	msg     []byte
	lastSeq int64
}

var wsGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

// dial connects to ws://addr/ws as user, hands the socket to p and returns
// once the welcome has arrived.
func dial(addr, user, token string, p *poller, timeout time.Duration) (*conn, error) {
	deadline := time.Now().Add(timeout)
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	c := &conn{fd: -1, user: user, first: make(chan struct{})}
	br := bufio.NewReaderSize(nc, 4096)
	if err := handshake(nc, br, addr, token, deadline); err != nil {
		return nil, err
	}
	if c.fd, err = detach(nc); err != nil {
		return nil, err
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if !c.consume(b, p.stats) {
			c.close()
			return nil, errors.New("server closed the connection after the upgrade")
		}
	}
	if err := p.add(c); err != nil {
		c.close()
		return nil, err
	}
	select {
	case <-c.first:
	case <-time.After(time.Until(deadline)):
		c.close()
		return nil, errors.New("no welcome from the server")
	}
	if c.gone.Load() {
		return nil, errors.New("server closed the connection after the upgrade")
	}
	return c, nil
}

// detach returns a non-blocking duplicate of nc's descriptor, which leaves
// Go's poller for ours; the caller closes nc.
func detach(nc net.Conn) (int, error) {
	raw, err := nc.(*net.TCPConn).SyscallConn()
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

func handshake(nc net.Conn, br *bufio.Reader, addr, token string, deadline time.Time) error {
	_ = nc.SetDeadline(deadline)
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(k[8:], rand.Uint64())
	key := base64.StdEncoding.EncodeToString(k[:])
	req := fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: http://%s\r\n"+
		"Sec-WebSocket-Protocol: wsgate.v1\r\nAuthorization: Bearer %s\r\n\r\n", addr, key, addr, token)
	if _, err := nc.Write([]byte(req)); err != nil {
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
func (c *conn) write(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.gone.Load() {
		return net.ErrClosed
	}
	b := append(c.wbuf[:0], 0x80|op, 0x80|byte(len(payload))) // control frames and closes only: < 126 bytes
	mask := rand.Uint32()
	b = binary.BigEndian.AppendUint32(b, mask)
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mask)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= m[i&3]
	}
	c.wbuf = b
	deadline := time.Now().Add(5 * time.Second)
	for len(b) > 0 {
		n, err := syscall.Write(c.fd, b)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
			if time.Now().After(deadline) {
				return errors.New("write blocked for 5s")
			}
			time.Sleep(time.Millisecond) // a full socket buffer drains on its own
		case err != nil:
			return err
		default:
			b = b[n:]
		}
	}
	return nil
}

// leave closes the connection on purpose: a close frame, then the socket.
func (c *conn) leave() {
	c.state.Store(leaving)
	_ = c.write(opClose, []byte{0x03, 0xe8}) // 1000
	c.close()
}

// close ends the connection once; safe from any goroutine.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		c.gone.Store(true)
		if c.fd >= 0 {
			syscall.Close(c.fd)
		}
		c.wmu.Unlock()
	})
}

// serverClosed reports whether the server has closed c's socket, which
// is then no longer established (CLOSE_WAIT once the server's FIN came),
// without reading from it: how a slow consumer, which reads nothing,
// learns that it was dropped.
func (c *conn) serverClosed() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.gone.Load() {
		return true
	}
	return tcpState(c.fd) != tcpEstablished
}

// Linux TCP states (include/net/tcp_states.h).
const tcpEstablished = 1

// tcpState returns the kernel's TCP state of fd, from TCP_INFO, whose
// first byte is tcpi_state; 0 when it cannot be read.
func tcpState(fd int) byte {
	var info [256]byte
	size := uint32(len(info))
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0
	}
	return info[0]
}

// consume parses the frames in b after any pending partial frame. It
// reports false when the connection is over.
func (c *conn) consume(b []byte, st *stats) bool {
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
				c.onMessage(c.msg, st)
				c.msg = c.msg[:0]
			}
		default:
			if !fin {
				c.msg = append(c.msg[:0], p...)
				continue
			}
			c.onMessage(p, st)
		}
	}
	if len(b) > maxMessage {
		return false
	}
	c.pending = append(c.pending[:0:0], b...)
	return true
}

// parseFrame decodes the frame at the start of b; ok is false when b does
// not hold a whole frame yet.
func parseFrame(b []byte) (fin bool, op byte, p []byte, n int, ok bool) {
	if len(b) < 2 {
		return
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0f
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
	if size > maxMessage || uint64(len(b)-h) < size {
		return
	}
	return fin, op, b[h : h+int(size)], h + int(size), true
}

var keySeq = []byte(`"seq":`)

// onMessage counts a broadcast and the ones this connection missed since
// its previous one.
func (c *conn) onMessage(p []byte, st *stats) {
	select {
	case <-c.first:
	default:
		close(c.first)
		return // the welcome
	}
	i := bytes.Index(p, keySeq)
	if i < 0 {
		return
	}
	var seq int64
	for _, ch := range p[i+len(keySeq):] {
		if ch < '0' || ch > '9' {
			break
		}
		seq = seq*10 + int64(ch-'0')
	}
	st.received.Add(1)
	if c.lastSeq > 0 && seq > c.lastSeq+1 {
		st.missed.Add(seq - c.lastSeq - 1)
	}
	c.lastSeq = max(c.lastSeq, seq)
}

// poller reads every socket from one goroutine with a level-triggered
// epoll set.
type poller struct {
	epfd  int
	stats *stats
	done  chan struct{}
	stop  atomic.Bool

	mu    sync.Mutex // guards conns
	conns map[int32]*conn
}

func newPoller(st *stats) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, stats: st, done: make(chan struct{}), conns: map[int32]*conn{}}
	go p.loop()
	return p, nil
}

func (p *poller) add(c *conn) error {
	p.mu.Lock()
	p.conns[int32(c.fd)] = c
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.forget(c)
		return err
	}
	return nil
}

// pause stops reading c, which makes it a slow consumer.
func (p *poller) pause(c *conn) {
	c.state.Store(slow)
	p.forget(c)
}

func (p *poller) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, int32(c.fd))
	p.mu.Unlock()
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
}

func (p *poller) close() {
	p.stop.Store(true)
	<-p.done
	syscall.Close(p.epfd)
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	for !p.stop.Load() {
		n, err := syscall.EpollWait(p.epfd, events, 100)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c == nil || c.gone.Load() {
				continue
			}
			m, err := syscall.Read(c.fd, buf)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil || m == 0 || !c.consume(buf[:m], p.stats) {
				p.forget(c)
				if c.state.Load() == live {
					p.stats.unexpected.Add(1)
				}
				c.close()
			}
		}
	}
}
