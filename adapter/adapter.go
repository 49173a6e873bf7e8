package adapter

import (
	"context"
	"errors"
)

// Handler receives one message published to a topic the node subscribed to.
//
// A broker calls it from its own delivery goroutine, so it must not block: the
// hub only enqueues into bounded per-connection queues. payload may be shared
// with other handlers in the same process; handlers treat it as read-only and
// brokers never reuse it after the call, so a handler may keep it.
type Handler func(topic string, payload []byte)

// Broker carries published messages to every node subscribed to a topic.
//
// Implementations are safe for concurrent use. Subscribe and Unsubscribe are
// idempotent: the hub reconciles its wanted set of topics against them and may
// repeat a call after an error.
type Broker interface {
	// Attach registers the function that receives every message for this
	// node's subscribed topics. The hub calls it once, before any Subscribe;
	// a second call returns ErrAttached.
	Attach(h Handler) error
	// Publish sends payload to every node subscribed to topic, the caller's
	// node included. It returns an error, without blocking past ctx, when the
	// message could not be handed to the transport.
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe starts delivery of topic to this node's handler.
	Subscribe(ctx context.Context, topic string) error
	// Unsubscribe stops delivery of topic to this node.
	Unsubscribe(ctx context.Context, topic string) error
	// Health returns nil while the broker can deliver messages. Readiness
	// probes report its error.
	Health(ctx context.Context) error
	// Close releases the broker. Publish and Subscribe fail with ErrClosed
	// afterwards; Close is idempotent.
	Close() error
}

var (
	// ErrClosed is returned by a Broker used after Close.
	ErrClosed = errors.New("adapter: broker closed")
	// ErrAttached is returned by a second call to Attach.
	ErrAttached = errors.New("adapter: handler already attached")
	// ErrNotAttached is returned by Subscribe before Attach.
	ErrNotAttached = errors.New("adapter: no handler attached")
)
