package wire

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// HandshakeError is an upgrade request that cannot become a WebSocket. It is
// found before anything is written, so the caller answers with Status and a
// body of its choice. Message never contains request data.
type HandshakeError struct {
	Status  int
	Message string
}

func (e *HandshakeError) Error() string { return "wire: " + e.Message }

// Check validates r as a WebSocket opening handshake (RFC 6455 section
// 4.2.1) without writing anything: GET over HTTP/1.1, Connection: upgrade,
// Upgrade: websocket, version 13 and a key of 16 base64-encoded bytes.
func Check(r *http.Request) error {
	switch {
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return &HandshakeError{http.StatusUpgradeRequired, "a WebSocket upgrade is required (Connection: Upgrade, Upgrade: websocket)"}
	case r.Method != http.MethodGet:
		return &HandshakeError{http.StatusMethodNotAllowed, "the WebSocket handshake must be a GET"}
	case !r.ProtoAtLeast(1, 1):
		return &HandshakeError{http.StatusBadRequest, "the WebSocket handshake needs HTTP/1.1"}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return &HandshakeError{http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version (13 is required)"}
	}
	if !validKey(r.Header.Values("Sec-WebSocket-Key")) {
		return &HandshakeError{http.StatusBadRequest, "invalid Sec-WebSocket-Key"}
	}
	return nil
}

// validKey reports whether keys is exactly one base64 value of 16 bytes.
func validKey(keys []string) bool {
	if len(keys) != 1 || len(keys[0]) != 24 {
		return false
	}
	var b [18]byte
	n, err := base64.StdEncoding.Decode(b[:], []byte(keys[0]))
	return err == nil && n == 16
}

// headerHasToken reports whether a comma-separated header lists token,
// case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// WantsUpgrade reports whether r asks for a WebSocket (Upgrade:
// websocket): Check refuses such a request unless the rest of the
// handshake is right.
func WantsUpgrade(r *http.Request) bool { return headerHasToken(r.Header, "Upgrade", "websocket") }

// Offers reports whether the client listed proto in Sec-WebSocket-Protocol.
func Offers(r *http.Request, proto string) bool {
	return headerHasToken(r.Header, "Sec-WebSocket-Protocol", proto)
}

// Response says how to answer an accepted handshake.
type Response struct {
	// Subprotocol is echoed in Sec-WebSocket-Protocol; the caller has
	// checked the client offered it (Offers). Empty: no header.
	Subprotocol string
	// Compression accepts the client's permessage-deflate offer, if it made
	// one that works without context takeover in either direction.
	Compression bool
}

// Upgraded is a connection after a successful handshake.
type Upgraded struct {
	// Conn is the hijacked socket, with no deadline set. The caller owns it.
	Conn net.Conn
	// Buffered holds bytes the client sent after its handshake that
	// net/http had already read: the start of the first frames.
	Buffered []byte
	// Compressed says permessage-deflate was negotiated, without context
	// takeover in either direction.
	Compressed bool
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Accept completes a handshake that passed Check: it hijacks the
// connection and writes the 101 response, with resp's subprotocol and
// extension and any header already set on w (a cookie, say). After an
// error, nothing usable was written and the hijacked socket, if any, is
// closed.
func Accept(w http.ResponseWriter, r *http.Request, resp Response) (Upgraded, error) {
	if err := Check(r); err != nil {
		return Upgraded{}, err
	}
	compress := resp.Compression && acceptDeflate(r.Header)
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return Upgraded{}, fmt.Errorf("wire: hijack: %w", err)
	}
	up := Upgraded{Conn: nc, Compressed: compress}
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		up.Buffered = append([]byte(nil), p...)
	}
	if _, err := nc.Write(appendResponse(nil, w.Header(), r.Header.Get("Sec-WebSocket-Key"), resp.Subprotocol, compress)); err != nil {
		_ = nc.Close()
		return Upgraded{}, fmt.Errorf("wire: write handshake: %w", err)
	}
	return up, nil
}

// appendResponse appends the 101 response: the headers set on the
// ResponseWriter, then the handshake's own.
func appendResponse(b []byte, h http.Header, key, subprotocol string, compress bool) []byte {
	sum := sha1.Sum([]byte(key + acceptGUID))
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	b = append(b, "\r\n"...)
	if subprotocol != "" {
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, subprotocol...)
		b = append(b, "\r\n"...)
	}
	if compress {
		b = append(b, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"...)
	}
	for name, values := range h {
		if skipResponseHeader(name) {
			continue
		}
		for _, v := range values {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, sanitizeHeaderValue(v)...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// skipResponseHeader keeps headers the handshake writes itself, and
// hop-by-hop ones, out of the copy of the ResponseWriter's headers.
func skipResponseHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions",
		"Content-Length", "Transfer-Encoding", "Content-Type":
		return true
	}
	return strings.ContainsAny(name, "\r\n: ")
}

// sanitizeHeaderValue drops CR and LF, as net/http does for the headers it
// writes, so a value cannot start another header.
func sanitizeHeaderValue(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, v)
}

// acceptDeflate reports whether one of the client's permessage-deflate
// offers works for us: any client_max_window_bits, but no limit on the
// server's window (compress/flate always uses 32 KiB) and no parameter we
// do not know. The response always asks for no context takeover on both
// sides, which RFC 7692 lets a server add to any offer.
func acceptDeflate(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for offer := range strings.SplitSeq(v, ",") {
			if deflateOfferOK(offer) {
				return true
			}
		}
	}
	return false
}

func deflateOfferOK(offer string) bool {
	params := strings.Split(offer, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return false
	}
	for _, p := range params[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.TrimSpace(name) {
		case "client_no_context_takeover", "server_no_context_takeover":
		case "client_max_window_bits":
		case "server_max_window_bits":
			if strings.Trim(strings.TrimSpace(value), `"`) != "15" {
				return false
			}
		default:
			return false
		}
	}
	return true
}
