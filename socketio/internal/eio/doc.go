// Package eio encodes and decodes Engine.IO v4 packets, the transport layer
// under Socket.IO v5.
//
// An Engine.IO packet is a type (open, close, ping, pong, message, upgrade,
// noop) and an optional payload. On a WebSocket each packet is one frame: a
// text frame holds the type digit followed by the payload ("4hello"), a
// binary frame holds the raw bytes of a binary message. In HTTP long-polling
// several packets travel in one request or response body, separated by the
// record separator 0x1e, and a binary message is written as "b" followed by
// its base64 encoding.
//
// Decoding never panics and never trusts sizes from the peer: a payload is
// bounded in bytes and in packets, text must be valid UTF-8, and every
// failure wraps ErrInvalid, after which the caller closes the session.
// Decoded packets alias the input where the wire bytes are the payload, so
// decoding a text frame allocates nothing.
//
// The smallest use, reading one long-polling POST body and answering a GET:
//
//	packets, err := eio.DecodePayload(nil, body, eio.Limits{})
//	if err != nil {
//		// 400 and close the session
//	}
//	for _, p := range packets {
//		// dispatch p.Type / p.Data
//	}
//	resp := eio.AppendPayload(nil, eio.Packet{Type: eio.Ping})
//
// The package also holds what an Engine.IO server says outside packets: the
// open packet's handshake data (Handshake), the session id (NewSID) and the
// HTTP error bodies {"code","message"} with their statuses (ErrorCode).
package eio
