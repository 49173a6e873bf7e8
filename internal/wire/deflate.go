package wire

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"sync"
)

// permessage-deflate without context takeover (RFC 7692): every message is
// compressed on its own, so a broadcast is compressed once for all of its
// recipients, and a connection keeps no compression state between messages.

// deflateTail ends every compressed message; the sender strips it.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// inflateTail is the stripped tail and then an empty final block, so that
// a whole message ends in io.EOF and a truncated one in an error.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

var inflaters sync.Pool // of io.ReadCloser implementing flate.Resetter

// inflate appends the inflated message p to dst, failing with close 1009
// past limit bytes: the limit is on what a message decompresses to, so a
// small deflate bomb cannot get past it.
func inflate(dst, p []byte, limit int64) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(inflateTail))
	fr, _ := inflaters.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(src)
	} else if err := fr.(flate.Resetter).Reset(src, nil); err != nil {
		return dst, violation(StatusInvalidPayload, "invalid deflate data")
	}
	defer inflaters.Put(fr)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := fr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, violation(StatusMessageTooBig, "message too big")
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return dst, nil
		default:
			return dst, violation(StatusInvalidPayload, "invalid deflate data")
		}
	}
}

var deflaters sync.Pool // of *flate.Writer

// Deflate returns p compressed for permessage-deflate, without the tail,
// to send with Frame.Deflated set.
func Deflate(p []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(p)/2 + 16)
	fw, _ := deflaters.Get().(*flate.Writer)
	if fw == nil {
		fw, _ = flate.NewWriter(&buf, flate.BestSpeed)
	} else {
		fw.Reset(&buf)
	}
	_, _ = fw.Write(p)
	_ = fw.Flush()
	deflaters.Put(fw)
	out := buf.Bytes()
	return out[:len(out)-len(deflateTail)]
}
