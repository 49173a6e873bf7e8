package socketio

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/socketio/internal/sio"
)

// Binary data, as Socket.IO carries it: a packet's JSON holds a
// placeholder {"_placeholder":true,"num":N} where attachment N goes, and
// the attachments follow it as binary messages (a Buffer or ArrayBuffer on
// the JavaScript side).
//
// From a client, a handler gets the bytes without doing anything: in the
// default mode (and NestJS's) each placeholder arrives in the handler's
// input as the attachment in base64, which is how encoding/json fills a
// []byte field. To send bytes as attachments, a handler returns (or
// Emit sends) a Binary, which NewBinary makes from a Go value. The
// wsgate.v1 protocol has no attachments: its clients get a Binary's JSON
// with the placeholders and without the bytes, so send Binary values on
// namespaces of Socket.IO clients only.

// Binary is a JSON value with the attachments its placeholders stand for.
// A handler that returns one answers the client's ack callback with
// binary arguments; Emit sends one as an event.
type Binary struct {
	// JSON is the value, placeholders included.
	JSON json.RawMessage
	// Attachments are the bytes of placeholder 0, 1, ...
	Attachments [][]byte
}

var _ bridge.Attached = Binary{}

// NewBinary marshals v with encoding/json, every non-empty []byte in it
// becoming an attachment with a placeholder in its place, as socket.io's
// encoder does with Buffers (an empty []byte stays "", and values under a
// json.Marshaler marshal themselves).
func NewBinary(v any) (Binary, error) {
	p, err := sio.NewAck("/", 0, v)
	if err != nil {
		return Binary{}, fmt.Errorf("socketio: %w", err)
	}
	return Binary{JSON: p.Args[0], Attachments: p.Attachments}, nil
}

// MarshalJSON returns b's JSON, placeholders included.
func (b Binary) MarshalJSON() ([]byte, error) {
	if len(b.JSON) == 0 {
		return []byte("null"), nil
	}
	return b.JSON, nil
}

// BinaryAttachments returns b's attachments; it is how the hub finds them
// beside the JSON.
func (b Binary) BinaryAttachments() [][]byte { return b.Attachments }

// Attachments returns the binary attachments of the Socket.IO event a
// handler is handling, in placeholder order: the bytes of an input in
// AllArguments mode, whose JSON keeps the placeholders. It returns nil for
// an event without attachments, a native client's message, and a context
// that is not a handler's.
func Attachments(ctx hub.Context) [][]byte { return bridge.Attachments(ctx) }

// Emit sends event, with v as its data, to the connection of the handler
// whose context ctx is, as ctx.Emit does; a Binary goes with its
// attachments.
func Emit(ctx hub.Context, event string, v any) error {
	if ctx.Context == nil {
		return errors.New("socketio: Emit needs a handler's context")
	}
	if err := bridge.Emit(ctx, event, v); err != nil {
		return fmt.Errorf("socketio: %w", err)
	}
	return nil
}
