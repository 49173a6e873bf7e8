// Package memory is the embedded, in-process Broker: the default when a hub
// is built without one.
//
// New returns a standalone broker for one hub. NewBus returns a bus on which
// several brokers (one per hub) share topics, which is how tests and examples
// run a multi-node cluster inside one process:
//
//	bus := memory.NewBus()
//	a, _ := hub.New(hub.Options{Broker: bus.Broker(), ...})
//	b, _ := hub.New(hub.Options{Broker: bus.Broker(), ...})
//
// Delivery is synchronous: Publish calls every subscribed node's handler
// before it returns, handing each the same payload slice. Handlers must not
// block (the adapter.Handler contract), and must not publish to the topic
// they are handed with a stream: a stream's lock is held while its message
// is delivered, which is what makes delivery order offset order.
//
// # Streams
//
// A publish with adapter.StreamOptions appends to the topic's stream, kept
// by the bus for every broker on it: at most Size entries, none older than
// TTL, and the position (epoch, top offset) for MetaTTL after the last
// publish. Nothing survives the process: every new bus starts every topic
// at a new epoch, so that a client recovering from a position given out by
// a previous process is told it cannot. Idempotency keys live on the bus
// too, per topic, at most MaxIdempotencyKeys of them.
//
// What expires is dropped when it is next touched and by a sweeper that
// runs every second while the bus holds anything, and stops by itself once
// the bus is empty; Bus.Close stops it at once.
//
// # Sessions
//
// NewSessions returns an adapter.SessionStore in this process's memory,
// for Socket.IO's connection state recovery on one node (socketio.Recovery):
// records are bounded in number (SessionsOptions.MaxRecords) and by their
// TTL, and do not survive the process.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/wsgate/wsgate/adapter"
)

// Bus connects the brokers that share its topics, and keeps their streams.
type Bus struct {
	mu     sync.RWMutex         // guards topics
	topics map[string][]*Broker // the nodes subscribed to each topic: a slice, one or a few per topic
	store  *store
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{topics: make(map[string][]*Broker), store: newStore()}
}

// Broker returns a new node's broker on the bus.
func (b *Bus) Broker() *Broker {
	return &Broker{bus: b, subs: make(map[string]struct{})}
}

// Close forgets every stream and idempotency key and stops the sweeper.
// Publishing with a stream, or reading history, on the bus fails with
// adapter.ErrClosed afterwards. It is idempotent.
func (b *Bus) Close() { b.store.close() }

// Usage reports what the bus holds in streams and idempotency keys.
func (b *Bus) Usage() Usage { return b.store.usage() }

// New returns a standalone broker on a bus of its own, which its Close
// closes too.
func New() *Broker {
	m := NewBus().Broker()
	m.ownBus = true
	return m
}

// Broker is one node's handle on a Bus. It implements adapter.Broker.
type Broker struct {
	bus    *Bus
	ownBus bool // created by New: Close closes the bus

	mu      sync.Mutex // guards handler, subs and closed
	handler adapter.Handler
	subs    map[string]struct{}
	closed  bool
}

var _ adapter.Broker = (*Broker)(nil)

// Attach implements adapter.Broker.
func (m *Broker) Attach(h adapter.Handler) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return adapter.ErrClosed
	case m.handler != nil:
		return adapter.ErrAttached
	}
	m.handler = h
	return nil
}

// Publish implements adapter.Broker. It delivers to every subscribed node
// before returning. With a stream, it returns ErrTooManyKeys rather than
// remember more than MaxIdempotencyKeys idempotency keys.
func (m *Broker) Publish(ctx context.Context, topic string, payload []byte, opts adapter.PublishOptions) (adapter.Position, error) {
	if err := m.usable(ctx); err != nil {
		return adapter.Position{}, err
	}
	opts, err := opts.WithDefaults()
	if err != nil {
		return adapter.Position{}, fmt.Errorf("memory: publish %q: %w", topic, err)
	}
	if opts.Stream.Enabled() {
		return m.bus.store.publish(topic, payload, opts, m.bus.deliver)
	}
	if opts.IdempotencyKey != "" {
		if pos, err := m.bus.store.claimKey(topic, opts, adapter.Position{}, m.bus.store.now()); err != nil {
			return pos, err
		}
	}
	m.bus.deliver(adapter.Message{Topic: topic, Payload: payload})
	return adapter.Position{}, nil
}

// History implements adapter.Broker.
func (m *Broker) History(ctx context.Context, topic string, q adapter.HistoryQuery) (adapter.HistoryResult, error) {
	if err := m.usable(ctx); err != nil {
		return adapter.HistoryResult{}, err
	}
	q, err := q.WithDefaults()
	if err != nil {
		return adapter.HistoryResult{}, fmt.Errorf("memory: history %q: %w", topic, err)
	}
	return m.bus.store.history(topic, q)
}

// Erase implements adapter.Broker.
func (m *Broker) Erase(ctx context.Context, topic string) error {
	if err := m.usable(ctx); err != nil {
		return err
	}
	m.bus.store.erase(topic)
	return nil
}

// usable returns ctx's error, or ErrClosed after Close.
func (m *Broker) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return adapter.ErrClosed
	}
	return nil
}

// deliver hands msg to every node subscribed to its topic.
func (b *Bus) deliver(msg adapter.Message) {
	// Handlers run outside the bus lock so that one may, through the hub,
	// end up subscribing or unsubscribing without deadlocking.
	var buf [8]*Broker
	nodes := buf[:0]
	b.mu.RLock()
	nodes = append(nodes, b.topics[msg.Topic]...)
	b.mu.RUnlock()
	for _, node := range nodes {
		// A node's handler is set before its first Subscribe and never
		// changes afterwards, so it is read without node.mu.
		node.handler(msg)
	}
}

// Subscribe implements adapter.Broker.
func (m *Broker) Subscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return adapter.ErrClosed
	case m.handler == nil:
		return adapter.ErrNotAttached
	}
	if _, ok := m.subs[topic]; ok {
		return nil
	}
	m.subs[topic] = struct{}{}
	m.bus.mu.Lock()
	m.bus.topics[topic] = append(m.bus.topics[topic], m)
	m.bus.mu.Unlock()
	return nil
}

// Unsubscribe implements adapter.Broker.
func (m *Broker) Unsubscribe(ctx context.Context, topic string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return adapter.ErrClosed
	}
	if _, ok := m.subs[topic]; !ok {
		return nil
	}
	delete(m.subs, topic)
	m.bus.remove(topic, m)
	return nil
}

// Topics returns the number of topics this node is subscribed to.
func (m *Broker) Topics() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs)
}

// Health implements adapter.Broker: nil until Close.
func (m *Broker) Health(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return adapter.ErrClosed
	}
	return nil
}

// Close implements adapter.Broker. It unsubscribes every topic, and closes
// the bus of a broker made by New.
func (m *Broker) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for topic := range m.subs {
		m.bus.remove(topic, m)
	}
	clear(m.subs)
	m.mu.Unlock()
	if m.ownBus {
		m.bus.Close()
	}
	return nil
}

func (b *Bus) remove(topic string, node *Broker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	nodes := b.topics[topic]
	if i := slices.Index(nodes, node); i >= 0 {
		nodes = slices.Delete(nodes, i, i+1)
	}
	if len(nodes) == 0 {
		delete(b.topics, topic)
	} else {
		b.topics[topic] = nodes
	}
}
