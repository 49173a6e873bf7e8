package wire

import (
	"encoding/binary"
	"errors"
	"io"
	"unicode/utf8"
)

// ReaderOptions bounds what a Reader accepts.
type ReaderOptions struct {
	// MaxMessageBytes caps a message's payload, after decompression. A frame
	// whose declared length would take its message past it is refused as
	// soon as its header arrives (close 1009). Must be positive.
	MaxMessageBytes int64
	// MaxFragments caps the frames of one fragmented message (close 1008
	// beyond it). Zero means DefaultMaxFragments.
	MaxFragments int
	// Compressed says permessage-deflate was negotiated: data frames whose
	// first frame has RSV1 set are inflated.
	Compressed bool
}

// DefaultMaxFragments is ReaderOptions.MaxFragments' default: enough for a
// 64 KiB message cut in 512-byte pieces, far fewer than a flood.
const DefaultMaxFragments = 128

// smallBuffer is the input buffer every connection keeps while idle: most
// messages of a chat or notification service fit, and a larger frame gets a
// buffer of its own only while it is read.
const smallBuffer = 512

// Reader reads the frames of one connection (RFC 6455 sections 5.2-5.5).
// It checks every frame, masked as a client's must be, before handing on a
// whole message or a control frame, so that whoever calls Next sees, and
// can meter, every ping and pong as it arrives. It never writes: answering
// pings and closes is the caller's job.
//
// A Reader is used by one goroutine.
type Reader struct {
	src  io.Reader
	opts ReaderOptions

	buf   []byte // buf[r:w] is input not yet consumed; small[:] while idle
	r, w  int
	total int64 // bytes read from src
	small [smallBuffer]byte

	// The message being assembled from fragments, or inflated.
	inMessage bool
	msgOp     Opcode
	deflated  bool
	fragments int
	msg       []byte
	out       []byte // inflated message
}

// NewReader returns a Reader of src whose input starts with buffered, the
// bytes read past the handshake.
func NewReader(src io.Reader, buffered []byte, opts ReaderOptions) *Reader {
	rd := &Reader{}
	rd.Reset(src, buffered, opts)
	return rd
}

// Reset makes rd read src as NewReader would, for a Reader embedded in a
// larger value.
func (rd *Reader) Reset(src io.Reader, buffered []byte, opts ReaderOptions) {
	if opts.MaxFragments <= 0 {
		opts.MaxFragments = DefaultMaxFragments
	}
	*rd = Reader{src: src, opts: opts}
	rd.buf = rd.small[:]
	if len(buffered) > len(rd.buf) {
		rd.buf = make([]byte, len(buffered))
	}
	rd.w = copy(rd.buf, buffered)
}

// Wait blocks until input is buffered, reading what the socket has into
// the idle buffer. A connection calls it between messages so that the
// goroutine of an idle connection waits in a shallow call, and keeps the
// smallest stack; Next then parses without waiting unless a frame is only
// partly there.
func (rd *Reader) Wait() error {
	if rd.w > rd.r {
		return nil
	}
	rd.shrink()
	rd.r, rd.w = 0, 0
	n, err := rd.src.Read(rd.buf)
	rd.w = n
	rd.total += int64(n)
	if n > 0 {
		return nil
	}
	return err
}

// Total returns how many bytes the Reader has read from its source.
func (rd *Reader) Total() int64 { return rd.total }

// header is a parsed frame header.
type header struct {
	fin, rsv1 bool
	op        Opcode
	length    int64
	mask      [4]byte
}

// Next returns the next data message or control frame. Data messages come
// whole: fragments are joined, deflated messages inflated and text checked
// to be valid UTF-8. A ping or pong arriving between the fragments of a
// message is returned at once. The payload is valid until the next call.
//
// A close frame from the peer ends the stream: Next returns a *CloseError
// with Peer set and the peer's code. A protocol violation returns a
// *CloseError with the code to close with. Any other error is the socket's.
func (rd *Reader) Next() (Opcode, []byte, error) {
	rd.shrink()
	for {
		h, err := rd.readHeader()
		if err != nil {
			return 0, nil, err
		}
		payload, err := rd.readPayload(h)
		if err != nil {
			return 0, nil, err
		}
		if h.op.IsControl() {
			if h.op == OpClose {
				code, err := parseClose(payload)
				if err != nil {
					return 0, nil, err
				}
				return 0, nil, &CloseError{Code: code, Peer: true}
			}
			return h.op, payload, nil
		}
		op, msg, done, err := rd.data(h, payload)
		if err != nil || done {
			return op, msg, err
		}
	}
}

// readHeader reads and checks one frame header.
func (rd *Reader) readHeader() (header, error) {
	var h header
	if err := rd.fill(2); err != nil {
		return h, err
	}
	b0, b1 := rd.buf[rd.r], rd.buf[rd.r+1]
	h.fin, h.rsv1, h.op = b0&finBit != 0, b0&rsv1Bit != 0, Opcode(b0&opMask)
	size := 2 + 4
	switch b1 & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if b1&maskBit == 0 {
		return h, violation(StatusProtocolError, "client frames must be masked")
	}
	if err := rd.fill(size); err != nil {
		return h, err
	}
	p := rd.buf[rd.r+2 : rd.r+size]
	switch b1 & 0x7f {
	case 126:
		h.length, p = int64(binary.BigEndian.Uint16(p)), p[2:]
	case 127:
		n := binary.BigEndian.Uint64(p)
		if n>>63 != 0 {
			return h, violation(StatusProtocolError, "frame length out of range")
		}
		h.length, p = int64(n), p[8:]
	default:
		h.length = int64(b1 & 0x7f)
	}
	copy(h.mask[:], p)
	rd.r += size
	return h, rd.check(h, b0)
}

// check enforces the framing rules that do not need the payload.
func (rd *Reader) check(h header, b0 byte) error {
	if b0&(rsv2Bit|rsv3Bit) != 0 {
		return violation(StatusProtocolError, "reserved bits set")
	}
	if h.op.IsControl() {
		switch {
		case h.op != OpClose && h.op != OpPing && h.op != OpPong:
			return violation(StatusProtocolError, "unknown opcode")
		case !h.fin:
			return violation(StatusProtocolError, "fragmented control frame")
		case h.length > MaxControlPayload:
			return violation(StatusProtocolError, "control frame too long")
		case h.rsv1:
			return violation(StatusProtocolError, "reserved bits set")
		}
		return nil
	}
	switch h.op {
	case OpContinuation:
		if !rd.inMessage {
			return violation(StatusProtocolError, "continuation without a message")
		}
		if h.rsv1 {
			return violation(StatusProtocolError, "reserved bits set")
		}
	case OpText, OpBinary:
		if rd.inMessage {
			return violation(StatusProtocolError, "new message inside a fragmented one")
		}
		if h.rsv1 && !rd.opts.Compressed {
			return violation(StatusProtocolError, "reserved bits set")
		}
	default:
		return violation(StatusProtocolError, "unknown opcode")
	}
	var sofar int64 // what the message being assembled already holds
	if rd.inMessage {
		sofar = int64(len(rd.msg))
	}
	if sofar+h.length > rd.opts.MaxMessageBytes {
		return violation(StatusMessageTooBig, "message too big")
	}
	if !h.fin && h.length == 0 {
		return violation(StatusPolicyViolation, "empty fragment")
	}
	return nil
}

// readPayload reads h's payload into the buffer and unmasks it in place.
func (rd *Reader) readPayload(h header) ([]byte, error) {
	n := int(h.length)
	if err := rd.fill(n); err != nil {
		return nil, err
	}
	p := rd.buf[rd.r : rd.r+n]
	rd.r += n
	unmask(p, h.mask)
	return p, nil
}

// data handles a data frame's payload; done says whether a message is
// complete.
func (rd *Reader) data(h header, payload []byte) (Opcode, []byte, bool, error) {
	if h.op != OpContinuation {
		rd.msgOp, rd.deflated, rd.fragments = h.op, h.rsv1, 0
		if h.fin && !h.rsv1 {
			return rd.finish(h.op, payload)
		}
		rd.inMessage = true
		rd.msg = rd.msg[:0]
	}
	rd.fragments++
	if rd.fragments > rd.opts.MaxFragments {
		return 0, nil, false, violation(StatusPolicyViolation, "too many fragments")
	}
	rd.msg = append(rd.msg, payload...)
	if !h.fin {
		return 0, nil, false, nil
	}
	rd.inMessage = false
	msg := rd.msg
	if rd.deflated {
		var err error
		if rd.out, err = inflate(rd.out[:0], msg, rd.opts.MaxMessageBytes); err != nil {
			return 0, nil, false, err
		}
		msg = rd.out
	}
	return rd.finish(rd.msgOp, msg)
}

func (rd *Reader) finish(op Opcode, msg []byte) (Opcode, []byte, bool, error) {
	if op == OpText && !utf8.Valid(msg) {
		return 0, nil, false, violation(StatusInvalidPayload, "text message is not UTF-8")
	}
	return op, msg, true, nil
}

// fill makes sure buf[r:r+n] holds input, reading as much as the socket
// has. A frame larger than the idle buffer gets a buffer of its own.
func (rd *Reader) fill(n int) error {
	if rd.w-rd.r >= n {
		return nil
	}
	if len(rd.buf)-rd.r < n {
		buf := rd.buf
		if len(buf) < n {
			buf = make([]byte, max(n, smallBuffer))
		}
		rd.w = copy(buf, rd.buf[rd.r:rd.w])
		rd.buf, rd.r = buf, 0
	}
	for rd.w-rd.r < n {
		m, err := rd.src.Read(rd.buf[rd.w:])
		rd.w += m
		rd.total += int64(m)
		if err != nil {
			if rd.w-rd.r >= n {
				return nil
			}
			if errors.Is(err, io.EOF) && rd.w > rd.r {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// shrink goes back to the idle buffer once what is left of a large one
// fits in it, and lets go of message buffers grown past the idle size, so
// that an idle connection holds only its small buffer.
func (rd *Reader) shrink() {
	if len(rd.buf) > smallBuffer && rd.w-rd.r <= smallBuffer {
		rd.w = copy(rd.small[:], rd.buf[rd.r:rd.w])
		rd.buf, rd.r = rd.small[:], 0
	}
	if !rd.inMessage && cap(rd.msg) > smallBuffer {
		rd.msg = nil
	}
	if cap(rd.out) > smallBuffer {
		rd.out = nil
	}
}

// unmask XORs p with the frame's masking key, eight bytes at a time.
func unmask(p []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k64)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
}
