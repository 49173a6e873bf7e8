package adapter

import (
	"context"
	"errors"
)

// Message is one delivery to the hub: a payload published to a topic the
// node subscribed to.
type Message struct {
	// Topic is the topic the message was published to.
	Topic string
	// Payload is the published bytes. It may be shared with other handlers
	// in the same process; handlers treat it as read-only, and brokers never
	// reuse it after the call, so a handler may keep it.
	Payload []byte
	// Pos is the message's place in the topic's stream, set when it was
	// published with a stream (PublishOptions.Stream); zero otherwise.
	Pos Position
}

// Handler receives every message for the topics the node subscribed to.
//
// A broker calls it from its own delivery goroutine, so it must not block:
// the hub only enqueues into bounded per-connection queues. Messages of one
// topic arrive in the order they were published; those published with a
// stream arrive in offset order.
type Handler func(m Message)

// Broker carries published messages to every node subscribed to a topic,
// and keeps the optional per-topic streams that recovery reads from.
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
	// node included. With opts.Stream it also appends the message to the
	// topic's stream and returns its position, atomically with the delivery,
	// so that delivery order is offset order. A retry with an
	// opts.IdempotencyKey already used returns ErrDuplicate, and the
	// position of the first publish, without delivering again.
	//
	// It returns an error, without blocking past ctx, when the message could
	// not be handed to the transport; a networked broker's error does not
	// prove that the message was lost (hence idempotency keys).
	Publish(ctx context.Context, topic string, payload []byte, opts PublishOptions) (Position, error)
	// History is a recovery read: every entry of topic's stream after
	// q.Since up to the top, or nothing (HistoryResult.Complete says which).
	// An error means the store could not answer; the result is then zero.
	History(ctx context.Context, topic string, q HistoryQuery) (HistoryResult, error)
	// Erase deletes topic's stream and position: its entries can no longer
	// be recovered, and the next publish with a stream starts a new epoch.
	Erase(ctx context.Context, topic string) error
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
	// ErrDuplicate is returned by Publish for a retry whose idempotency key
	// was already used within its window: nothing was delivered again.
	ErrDuplicate = errors.New("adapter: duplicate publish")
	// ErrInvalidOptions is wrapped by the errors of PublishOptions,
	// StreamOptions and HistoryQuery that are out of range.
	ErrInvalidOptions = errors.New("adapter: invalid options")
)
