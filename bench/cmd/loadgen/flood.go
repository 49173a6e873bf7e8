package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// A flood is what one authenticated connection can send to keep a server
// busy without ever sending a valid request: the frames are written by hand,
// as no client library would, from a batch built once, so that the flooder
// costs the shared cores as little as possible.

// floodKind is one kind of flood.
type floodKind struct {
	id    string // for -flood-kinds
	name  string // in the report
	start []byte // one frame sent first (the opening fragment of a message), if any
	unit  []byte // the frame sent over and over
}

// junkMessage is well-formed UTF-8 and a syntactically broken envelope, as
// hub/flood_test.go sends: every copy costs the server a parse and an error.
var junkMessage = []byte(`{"type":"event","event":"x","data":` + strings.Repeat("[", 40) + `}`)

// floodKinds lists the floods hub/flood_test.go closes, in that order.
func floodKinds() []floodKind {
	const mask = 0x01020304
	open := appendFrame(nil, false, opText, []byte("{"), mask)
	return []floodKind{
		{id: "pings", name: "pings", unit: appendFrame(nil, true, opPing, []byte("p"), mask)},
		{id: "pongs", name: "unsolicited pongs", unit: appendFrame(nil, true, opPong, []byte("p"), mask)},
		{id: "empty-continuations", name: "empty continuations", start: open,
			unit: appendFrame(nil, false, opCont, nil, mask)},
		{id: "byte-continuations", name: "1-byte continuations", start: open,
			unit: appendFrame(nil, false, opCont, []byte(" "), mask)},
		{id: "junk", name: "junk messages", unit: appendFrame(nil, true, opText, junkMessage, mask)},
	}
}

// floodBatch is the size of one write(2) of flood frames.
const floodBatch = 64 << 10

// batches returns the first write (the start frame, then units) and every
// later one (units only), each about floodBatch bytes of whole frames.
func (k floodKind) batches() (first, rest []byte) {
	n := max(1, floodBatch/len(k.unit))
	rest = make([]byte, 0, n*len(k.unit))
	for range n {
		rest = append(rest, k.unit...)
	}
	first = append(append([]byte(nil), k.start...), rest...)
	return first, rest
}

// floodConn is one flooding connection over a plain net.Conn: a handful of
// them run at a time, so a goroutine each is fine here.
type floodConn struct {
	nc      net.Conn
	br      *bufio.Reader
	started time.Time // the first flood frame's write
}

// dialFlood connects, authenticates as d says and returns once the server
// considers the connection established (its first message, where the
// protocol has one).
func dialFlood(addr string, d *dialect, token string, timeout time.Duration) (*floodConn, error) {
	deadline := time.Now().Add(timeout)
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	fc := &floodConn{nc: nc, br: bufio.NewReaderSize(nc, 4096)}
	if err := fc.establish(addr, d, token, deadline); err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return fc, nil
}

func (fc *floodConn) establish(addr string, d *dialect, token string, deadline time.Time) error {
	if err := handshake(fc.nc, fc.br, addr, token, d, deadline); err != nil {
		return err
	}
	if d.hello != nil {
		if _, err := fc.nc.Write(appendFrame(nil, true, opText, d.hello(token), 0x01020304)); err != nil {
			return err
		}
	}
	for d.waitFirst {
		op, _, err := readServerFrame(fc.br)
		if err != nil {
			return fmt.Errorf("waiting for the first message: %w", err)
		}
		if op == opClose {
			return errors.New("server closed the connection after the upgrade")
		}
		if op == opText || op == 0x2 {
			break
		}
	}
	return nil
}

// floodOutcome is what one flooding connection saw.
type floodOutcome struct {
	frames  int64         // flood frames written
	closed  bool          // the server sent its close frame
	code    int           // with this code
	took    time.Duration // first flood frame → the server's close frame
	dropped bool          // the server ended the TCP connection
	gone    time.Duration // first flood frame → the end of the TCP connection
	sent    time.Duration // first flood frame → the last one written
}

// floodLimits bound one flooding connection.
type floodLimits struct {
	frames int64         // flood frames at most
	until  time.Time     // no flood frame after this
	grace  time.Duration // then how long to wait for the server to end the connection
	// stopAtClose stops the flood at the server's close frame and closes
	// the connection; otherwise the flood goes on, as an attacker's would,
	// until the server ends the TCP connection.
	stopAtClose bool
}

// serverEnd is what the reader of a flooding connection saw.
type serverEnd struct {
	closed    bool // close frame
	code      int
	closedAt  time.Time
	dropped   bool // EOF or reset: the server ended the connection
	droppedAt time.Time
}

// flood writes k's frames as fast as the socket takes them until the
// server ends the connection, lim is reached or stop is closed, then
// closes the connection. The server's frames are drained meanwhile, so a
// server that answers every frame (a pong per ping, an echo per message)
// is never blocked by the flooder.
func (fc *floodConn) flood(k floodKind, lim floodLimits, stop <-chan struct{}) floodOutcome {
	defer fc.nc.Close()
	var end serverEnd
	closeSeen, readDone := make(chan struct{}), make(chan struct{})
	_ = fc.nc.SetReadDeadline(lim.until.Add(lim.grace))
	go func() {
		defer close(readDone)
		end = readServer(fc.br, closeSeen)
	}()
	first, rest := k.batches()
	start := time.Now()
	fc.started = start
	var out floodOutcome
	var writeDropped time.Time
	for batch := first; out.frames < lim.frames && time.Now().Before(lim.until); batch = rest {
		if floodOver(stop, readDone, closeSeen, lim.stopAtClose) {
			break
		}
		_ = fc.nc.SetWriteDeadline(minTime(lim.until, time.Now().Add(2*time.Second)))
		n, err := fc.nc.Write(batch)
		out.frames += int64(max(0, n-len(batch)+len(rest)) / len(k.unit))
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				writeDropped = time.Now()
			}
			break
		}
	}
	out.sent = time.Since(start)
	// The reader has the close frame already when the flood stopped for
	// it; otherwise it gets the grace to see the server end the connection
	// (at once after a failed write: the reset is there to read).
	wait := lim.grace
	if lim.stopAtClose && isClosed(closeSeen) {
		wait = 0
	}
	_ = fc.nc.SetReadDeadline(time.Now().Add(wait))
	select {
	case <-readDone:
	case <-stop:
		_ = fc.nc.SetReadDeadline(time.Now())
		<-readDone
	}
	out.closed, out.code, out.took = end.closed, end.code, end.closedAt.Sub(start)
	switch {
	case !writeDropped.IsZero() && (!end.dropped || writeDropped.Before(end.droppedAt)):
		out.dropped, out.gone = true, writeDropped.Sub(start)
	case end.dropped:
		out.dropped, out.gone = true, end.droppedAt.Sub(start)
	}
	// The close frame came before the end of the connection on the wire,
	// but a write refused by the reset can be timed before the reader
	// times the close frame waiting in its buffer: it was there by then.
	if out.closed && out.dropped && out.gone < out.took {
		out.took = out.gone
	}
	return out
}

// isClosed reports whether ch is closed, without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// floodOver reports, without blocking, whether the flood must stop.
func floodOver(stop, readDone, closeSeen <-chan struct{}, stopAtClose bool) bool {
	select {
	case <-stop:
		return true
	case <-readDone:
		return true
	default:
	}
	return stopAtClose && isClosed(closeSeen)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// readServer reads server frames until the connection ends or the read
// deadline passes, noting the close frame (and closing closeSeen then).
func readServer(br *bufio.Reader, closeSeen chan<- struct{}) (end serverEnd) {
	for {
		op, p, err := readServerFrame(br)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				end.dropped, end.droppedAt = true, time.Now()
			}
			return end
		}
		if op == opClose && !end.closed {
			end.closed, end.closedAt, end.code = true, time.Now(), 1005
			if len(p) >= 2 {
				end.code = int(binary.BigEndian.Uint16(p))
			}
			close(closeSeen)
		}
	}
}

// readServerFrame reads one frame of a server (unmasked by the protocol);
// only a close frame's payload is kept.
func readServerFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	op, n := h[0]&0x0f, uint64(h[1]&0x7f)
	var ext [8]byte
	switch n {
	case 126:
		if _, err := io.ReadFull(br, ext[:2]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:2]))
	case 127:
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if h[1]&0x80 != 0 || n > maxMessage {
		return 0, nil, fmt.Errorf("bad server frame (masked or %d bytes)", n)
	}
	if op == opClose {
		payload = make([]byte, n)
		_, err = io.ReadFull(br, payload)
		return op, payload, err
	}
	_, err = br.Discard(int(n))
	return op, nil, err
}
