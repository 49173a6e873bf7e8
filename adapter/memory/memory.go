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
// block (the adapter.Handler contract).
package memory

import (
	"context"
	"sync"

	"github.com/wsgate/wsgate/adapter"
)

// Bus connects the brokers that share its topics.
type Bus struct {
	mu     sync.RWMutex // guards topics
	topics map[string]map[*Broker]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{topics: make(map[string]map[*Broker]struct{})}
}

// Broker returns a new node's broker on the bus.
func (b *Bus) Broker() *Broker {
	return &Broker{bus: b, subs: make(map[string]struct{})}
}

// New returns a standalone broker on a bus of its own.
func New() *Broker { return NewBus().Broker() }

// Broker is one node's handle on a Bus. It implements adapter.Broker.
type Broker struct {
	bus *Bus

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
// before returning.
func (m *Broker) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return adapter.ErrClosed
	}
	// Handlers run outside the bus lock so that one may, through the hub,
	// end up subscribing or unsubscribing without deadlocking.
	var buf [8]*Broker
	nodes := buf[:0]
	m.bus.mu.RLock()
	for node := range m.bus.topics[topic] {
		nodes = append(nodes, node)
	}
	m.bus.mu.RUnlock()
	for _, node := range nodes {
		// A node's handler is set before its first Subscribe and never
		// changes afterwards, so it is read without node.mu.
		node.handler(topic, payload)
	}
	return nil
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
	nodes := m.bus.topics[topic]
	if nodes == nil {
		nodes = make(map[*Broker]struct{})
		m.bus.topics[topic] = nodes
	}
	nodes[m] = struct{}{}
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

// Close implements adapter.Broker. It unsubscribes every topic.
func (m *Broker) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for topic := range m.subs {
		m.bus.remove(topic, m)
	}
	clear(m.subs)
	return nil
}

func (b *Bus) remove(topic string, node *Broker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	nodes := b.topics[topic]
	delete(nodes, node)
	if len(nodes) == 0 {
		delete(b.topics, topic)
	}
}
