// Package sio encodes and decodes Socket.IO v5 packets, the layer above
// Engine.IO (package eio): each Socket.IO packet travels as the payload of
// an Engine.IO message, followed by one binary message per attachment.
//
// A packet has a type (CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR,
// BINARY_EVENT, BINARY_ACK), a namespace ("/" unless named), an optional
// ack id and JSON data:
//
//	2["message",{"text":"hi"}]          an event on "/"
//	2/chat,12["message","hi"]           an event on "/chat" asking for ack 12
//	3/chat,12[{"ok":true}]              its ack
//	51-["upload",{"_placeholder":true,"num":0}] + 1 binary message
//
// Decoding follows the reference implementation's rules and is stricter
// where they leave room for abuse: the event name is a string that is not
// reserved, or an integer; ack ids are decimal digits up to 2^53-1;
// placeholders appear only in binary packets, exactly as the reference
// encoder writes them, each number in range and used once; a packet
// declares at most Limits.MaxAttachments attachments, bounded in bytes;
// namespaces start with '/' and are bounded; an event's data is a non-empty
// array, an ack's an array, CONNECT's and CONNECT_ERROR's an object. Every
// error wraps ErrInvalid and the caller closes the connection.
//
// An event is exposed as its name and its arguments as raw JSON, one
// json.RawMessage each, so that a server decodes the first argument into
// its handler's input type without decoding twice; ArgJSON substitutes the
// attachments for their placeholders as base64 strings, which is how
// encoding/json fills a []byte field.
//
// Encoding produces the frames once for any number of recipients:
//
//	p, err := sio.NewEvent("/", "message", reply)
//	enc, err := p.Encode()   // enc.Text: 42["message",{...}], enc.Attachments
//	// write enc.Text and enc.Attachments to every recipient's transport
//
// and decoding reassembles binary packets across messages:
//
//	dec := sio.NewDecoder(sio.Limits{})
//	p, ok, err := dec.DecodeText(msg) // or dec.DecodeBinary(msg)
//	if err != nil {
//		// close the connection
//	}
//	if ok {
//		// dispatch p
//	}
package sio
