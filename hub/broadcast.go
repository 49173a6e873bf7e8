package hub

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/room"
)

// Broker topics: one per room, and one that every node subscribes to.
const (
	topicAll        = "all"
	topicRoomPrefix = "room:"
)

// relayVersion leads every broker payload so nodes of different versions
// can tell each other's messages apart.
const relayVersion = 1

// Relay kinds: what the bytes after the header are.
const (
	relayFrame      byte = 0 // an encoded frame for every local member
	relayDisconnect byte = 1 // a bye reason: close every local member
)

// BroadcastOption modifies one broadcast.
type BroadcastOption func(*broadcast)

type broadcast struct{ except string }

// Except leaves out the connection with id connID, on whichever node it is:
// "everyone but the sender".
func Except(connID string) BroadcastOption {
	return func(b *broadcast) { b.except = connID }
}

// Broadcast sends event with data to every member of room on every node. data
// is encoded once; every recipient shares the same frame bytes. It returns
// the broker's error when the message could not be published.
func (h *Hub) Broadcast(ctx context.Context, name, event string, data any, opts ...BroadcastOption) error {
	if !room.Valid(name) {
		return fmt.Errorf("hub: broadcast: %w", room.ErrInvalidName)
	}
	return h.publish(ctx, topicRoomPrefix+name, name, event, data, opts)
}

// ToUser sends event to every connection of userID on every node.
func (h *Hub) ToUser(ctx context.Context, userID, event string, data any, opts ...BroadcastOption) error {
	name, err := roomOf(room.User(userID))
	if err != nil {
		return err
	}
	return h.publish(ctx, topicRoomPrefix+name, "", event, data, opts)
}

// roomOf refuses the name of a room no connection can be in (an id outside
// the room-argument alphabet is never auto-joined): a publish to it would
// succeed and reach nobody.
func roomOf(name string) (string, error) {
	if !room.Valid(name) {
		return "", fmt.Errorf("hub: %w: %q", room.ErrInvalidName, name)
	}
	return name, nil
}

// ToTenant sends event to every connection of tenant tenantID on every node.
func (h *Hub) ToTenant(ctx context.Context, tenantID, event string, data any, opts ...BroadcastOption) error {
	name, err := roomOf(room.Tenant(tenantID))
	if err != nil {
		return err
	}
	return h.publish(ctx, topicRoomPrefix+name, "", event, data, opts)
}

// ToAll sends event to every authenticated connection on every node.
func (h *Hub) ToAll(ctx context.Context, event string, data any, opts ...BroadcastOption) error {
	return h.publish(ctx, topicAll, "", event, data, opts)
}

func (h *Hub) publish(ctx context.Context, topic, roomName, event string, data any, opts []BroadcastOption) error {
	if h.closing.Load() {
		return ErrShuttingDown
	}
	var b broadcast
	for _, o := range opts {
		o(&b)
	}
	payload := appendRelayHeader(make([]byte, 0, 128), relayFrame, b.except)
	payload, err := h.eventFrame(payload, event, roomName, data)
	if err != nil {
		return err
	}
	start := time.Now()
	err = h.broker.Publish(ctx, topic, payload)
	h.obs.Published(event, time.Since(start), err)
	return err
}

// eventFrame appends an event frame for data to dst.
func (h *Hub) eventFrame(dst []byte, event, roomName string, data any) ([]byte, error) {
	if !protocol.ValidEventName(event) {
		return nil, fmt.Errorf("hub: invalid event name %q", event)
	}
	var raw []byte
	if data != nil {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return nil, fmt.Errorf("hub: encode %s: %w", event, err)
		}
	}
	return h.codec.AppendEvent(dst, event, roomName, raw), nil
}

// The relay header: version byte, kind byte, uvarint length of the excluded
// connection id, the id; the body follows.
func appendRelayHeader(dst []byte, kind byte, except string) []byte {
	dst = append(dst, relayVersion, kind)
	dst = binary.AppendUvarint(dst, uint64(len(except)))
	return append(dst, except...)
}

var errRelay = errors.New("hub: malformed relay payload")

func parseRelay(p []byte) (kind byte, except string, body []byte, err error) {
	if len(p) < 3 || p[0] != relayVersion {
		return 0, "", nil, errRelay
	}
	kind = p[1]
	n, w := binary.Uvarint(p[2:])
	if w <= 0 || n > uint64(len(p)-2-w) {
		return 0, "", nil, errRelay
	}
	start := 2 + w
	return kind, string(p[start : start+int(n)]), p[start+int(n):], nil
}

// deliver is the broker handler: fan a published frame out to the local
// members of its topic. It never blocks: enqueue only appends.
func (h *Hub) deliver(topic string, payload []byte) {
	kind, except, frame, err := parseRelay(payload)
	if err != nil || kind > relayDisconnect {
		h.log.Warn("relay_invalid", slog.String("topic", topic))
		return
	}
	if kind == relayDisconnect {
		h.disconnectLocal(topic, string(frame))
		return
	}
	n := 0
	// The connections whose writer must start go to the pool in one go,
	// after the loop: one lock instead of one per recipient.
	// Deferred, so that the connections already marked as writing get
	// their writer even if an Observer panics in the loop.
	start := h.writers.getBatch()
	defer h.writers.pushBatch(start)
	if topic == topicAll {
		h.connsMu.RLock()
		defer h.connsMu.RUnlock()
		for _, c := range h.conns {
			if c.id != except && c.enqueueTo(frame, frameBroadcast, start) {
				n++
			}
		}
	} else if name, ok := strings.CutPrefix(topic, topicRoomPrefix); ok {
		h.index.Each(name, func(c *conn) {
			if c.id != except && c.enqueueTo(frame, frameBroadcast, start) {
				n++
			}
		})
	}
	h.obs.Delivered(n)
}

// DisconnectUser closes every connection of userID on every node, after a
// bye carrying reason (e.g. "logout"), with close code 4001 so clients do not
// reconnect with the old credential.
func (h *Hub) DisconnectUser(ctx context.Context, userID, reason string) error {
	if h.closing.Load() {
		return ErrShuttingDown
	}
	name, err := roomOf(room.User(userID))
	if err != nil {
		return err
	}
	payload := appendRelayHeader(make([]byte, 0, 64), relayDisconnect, "")
	payload = append(payload, reason...)
	return h.broker.Publish(ctx, topicRoomPrefix+name, payload)
}

func (h *Hub) disconnectLocal(topic, reason string) {
	name, ok := strings.CutPrefix(topic, topicRoomPrefix)
	if !ok {
		return
	}
	if reason == "" {
		// closeWith without a bye runs the close handshake inline, which
		// would block the broker's delivery on a silent peer.
		reason = "disconnected"
	}
	var victims []*conn
	h.index.Each(name, func(c *conn) { victims = append(victims, c) })
	for _, c := range victims {
		c.setReason("disconnected_by_server")
		c.closeWith(CloseUnauthorized, "disconnected", reason)
	}
}

// join adds c to a room, makes sure the node is subscribed to it and
// records presence.
func (h *Hub) join(c *conn, name string) error {
	if _, err := h.index.Join(name, c); err != nil {
		return err
	}
	// Not only on the first join: a first joiner whose Subscribe failed
	// leaves, and a member that joined meanwhile must not stay unsubscribed.
	if err := h.subs.sync(name); err != nil {
		h.leave(c, name)
		return fmt.Errorf("hub: subscribe %s: %w", name, err)
	}
	if h.opts.Presence != nil {
		h.opts.Presence.Add(name, c.identity().UserID, c.id)
	}
	// cleanup cancels c.ctx before leaveAll: a join (from a late handler or
	// JoinConn) that raced it is undone here instead of pinning the dead
	// connection in the index, the broker and presence. leaveAll may have
	// taken c out of the index before Presence.Add above ran, in which case
	// leave finds nothing to undo: the presence entry is removed regardless.
	if c.ctx.Err() != nil {
		if left, _ := h.leave(c, name); !left && h.opts.Presence != nil {
			h.opts.Presence.Remove(name, c.identity().UserID, c.id)
		}
		return ErrUnknownConnection
	}
	return nil
}

// leave takes c out of a room, and out of presence if it was in the room.
func (h *Hub) leave(c *conn, name string) (left, last bool) {
	left, last = h.index.Leave(name, c)
	if left && h.opts.Presence != nil {
		h.opts.Presence.Remove(name, c.identity().UserID, c.id)
	}
	if last {
		_ = h.subs.sync(name)
	}
	return left, last
}

func (h *Hub) leaveAll(c *conn) {
	if h.opts.Presence != nil {
		user := c.identity().UserID
		for _, name := range h.index.RoomsOf(c, nil) {
			h.opts.Presence.Remove(name, user, c.id)
		}
	}
	for _, name := range h.index.LeaveAll(c) {
		_ = h.subs.sync(name)
	}
}

// Presence returns the users with at least one connection in room (R8):
// across every node when Options.Presence is a shared store, otherwise the
// users connected to this node. The order is unspecified.
func (h *Hub) Presence(ctx context.Context, name string) ([]string, error) {
	if h.opts.Presence != nil {
		return h.opts.Presence.Users(ctx, name)
	}
	seen := make(map[string]struct{})
	users := []string{}
	h.index.Each(name, func(c *conn) {
		u := c.identity().UserID
		if _, ok := seen[u]; !ok {
			seen[u] = struct{}{}
			users = append(users, u)
		}
	})
	return users, nil
}

// JoinConn adds a connection of this node to a room, bypassing the room
// policy: the server decides. It returns ErrUnknownConnection when connID is
// not connected here.
func (h *Hub) JoinConn(connID, name string) error {
	c := h.lookup(connID)
	if c == nil || c.ident.Load() == nil {
		return ErrUnknownConnection
	}
	if !room.Valid(name) {
		return fmt.Errorf("hub: %w", room.ErrInvalidName)
	}
	return h.join(c, name)
}

// LeaveConn removes a connection of this node from a room.
func (h *Hub) LeaveConn(connID, name string) error {
	c := h.lookup(connID)
	if c == nil {
		return ErrUnknownConnection
	}
	h.leave(c, name)
	return nil
}

// subscriptions keeps the broker subscribed to exactly the rooms with local
// members. Joins and leaves of one room may race; instead of trusting the
// order of first/last events, sync compares the index with what the broker
// was told, under a per-room stripe lock, so the end state is always right.
type subscriptions struct {
	h       *Hub
	seed    maphash.Seed
	stripes [64]subStripe
}

type subStripe struct {
	mu sync.Mutex // guards on and serialises broker calls for its rooms
	on map[string]struct{}
}

func (s *subscriptions) init(h *Hub) {
	s.h = h
	s.seed = maphash.MakeSeed()
	for i := range s.stripes {
		s.stripes[i].on = make(map[string]struct{})
	}
}

func (s *subscriptions) sync(name string) error {
	st := &s.stripes[maphash.String(s.seed, name)%uint64(len(s.stripes))]
	st.mu.Lock()
	defer st.mu.Unlock()
	_, have := st.on[name]
	want := s.h.index.Count(name) > 0
	if want == have {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if want {
		if err := s.h.broker.Subscribe(ctx, topicRoomPrefix+name); err != nil {
			return err
		}
		st.on[name] = struct{}{}
		return nil
	}
	delete(st.on, name)
	if err := s.h.broker.Unsubscribe(ctx, topicRoomPrefix+name); err != nil {
		s.h.log.Warn("unsubscribe_failed", slog.String("room", name), slog.String("error", err.Error()))
		return err
	}
	return nil
}
