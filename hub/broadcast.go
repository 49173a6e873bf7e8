package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/room"
)

// Broker topics: one per room, one per user, and one that every node
// subscribes to. A node subscribes to a room's or a user's topic while it
// has a connection for it.
const (
	topicAll        = "all"
	topicRoomPrefix = "room:"
	topicUserPrefix = "user:"
)

// BroadcastOption modifies one broadcast.
type BroadcastOption func(*broadcast)

type broadcast struct {
	except, key string
	transient   bool
}

// Except leaves out the connection with id connID, on whichever node it is:
// "everyone but the sender". In a room with history, a recovery on that
// connection leaves the message out too; a new connection of the same
// client (after a reconnect) is another connection, and recovers it.
func Except(connID string) BroadcastOption {
	return func(b *broadcast) { b.except = connID }
}

// Transient keeps the event out of the room's history, in a room that
// keeps one: it is delivered live only, without a position, and never
// recovered. For what is stale a second later (typing indicators, cursor
// moves), which would only take history's room from what matters.
func Transient() BroadcastOption {
	return func(b *broadcast) { b.transient = true }
}

// Idempotent makes the broadcast happen once per key: a retry with the same
// key to the same room, user, tenant or everyone within 2 minutes
// (adapter.DefaultIdempotencyTTL) delivers nothing and returns nil, since
// the first was delivered — across nodes with a shared broker. Use it when
// a publish may be retried after an error that does not prove it failed (a
// timeout, a broker that answered late). A key is at most
// adapter.MaxIdempotencyKeyLen bytes; keys of different targets never
// collide.
func Idempotent(key string) BroadcastOption {
	return func(b *broadcast) { b.key = key }
}

// Broadcast sends event with data to every member of room on every node. data
// is encoded to JSON once, and framed once per wire protocol in use among the
// recipients of each node; every recipient of a protocol shares the frame. It returns
// the broker's error when the message could not be published.
func (h *Hub) Broadcast(ctx context.Context, name, event string, data any, opts ...BroadcastOption) error {
	if !room.Valid(name) {
		return fmt.Errorf("hub: broadcast: %w", room.ErrInvalidName)
	}
	return h.publish(ctx, h.routeOf(name), event, data, opts)
}

// ToUser sends event to every connection of userID on every node. It
// reaches them by identity: whatever rooms they are in, and whatever
// characters the id holds.
func (h *Hub) ToUser(ctx context.Context, userID, event string, data any, opts ...BroadcastOption) error {
	if userID == "" {
		return fmt.Errorf("hub: ToUser: empty user id")
	}
	return h.publish(ctx, h.userRoute(userID), event, data, opts)
}

// roomOf refuses the name of a room no connection can be in: a publish to
// it would succeed and reach nobody.
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
	r := h.routeOf(name)
	if !r.keeps() {
		// Without history the event is addressed to the tenant, not
		// through its room; with history it carries the room's position.
		r.room = ""
	}
	return h.publish(ctx, r, event, data, opts)
}

// ToAll sends event to every authenticated connection on every node.
func (h *Hub) ToAll(ctx context.Context, event string, data any, opts ...BroadcastOption) error {
	return h.publish(ctx, route{topic: topicAll}, event, data, opts)
}

// publish sends an event along r: into its stream when it has one.
func (h *Hub) publish(ctx context.Context, r route, event string, data any, opts []BroadcastOption) error {
	topic, roomName := r.topic, r.room
	if h.closing.Load() {
		return ErrShuttingDown
	}
	var b broadcast
	for _, o := range opts {
		o(&b)
	}
	m, err := eventMessage(event, roomName, data)
	if err != nil {
		return err
	}
	if b.transient {
		r.stream = adapter.StreamOptions{}
	}
	ctx, carrier, end := h.opts.Tracer.Publish(ctx, topic, event)
	if len(carrier) > MaxTraceCarrier {
		carrier = nil
	}
	payload := appendRelayMessage(make([]byte, 0, 64+len(b.except)+len(event)+len(roomName)+len(m.Data)+len(carrier)), b.except, &m, carrier)
	start := time.Now()
	_, err = h.broker.Publish(ctx, topic, payload, adapter.PublishOptions{Stream: r.stream, IdempotencyKey: b.key})
	if errors.Is(err, adapter.ErrDuplicate) {
		// The first publish with the key was delivered: so was this one.
		err = nil
	}
	h.obs.Published(event, time.Since(start), err)
	end(err)
	return err
}

// eventMessage builds an event with data encoded as JSON.
func eventMessage(event, roomName string, data any) (protocol.Message, error) {
	if !protocol.ValidEventName(event) {
		return protocol.Message{}, fmt.Errorf("hub: invalid event name %q", event)
	}
	m := protocol.Message{Kind: protocol.MsgEvent, Event: event, Room: roomName}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			return m, fmt.Errorf("hub: encode %s: %w", event, err)
		}
		m.Data = raw
	}
	return m, nil
}

// DisconnectUser closes every connection of userID on every node, after a
// bye carrying reason (e.g. "logout"), with close code 4001 so clients do not
// reconnect with the old credential. Connections are found by identity, so
// none escapes by leaving a room.
func (h *Hub) DisconnectUser(ctx context.Context, userID, reason string) error {
	if h.closing.Load() {
		return ErrShuttingDown
	}
	if userID == "" {
		return fmt.Errorf("hub: DisconnectUser: empty user id")
	}
	_, err := h.broker.Publish(ctx, topicUserPrefix+userID, appendRelayDisconnect(nil, reason), adapter.PublishOptions{})
	return err
}

// JoinUser adds every connection of userID, on every node, to room,
// bypassing the room policy: the server grants membership. Connections the
// user opens later are not affected (AutoRooms or a rule decides for them).
func (h *Hub) JoinUser(ctx context.Context, userID, name string) error {
	return h.membership(ctx, relayJoin, userID, name)
}

// LeaveUser removes every connection of userID, on every node, from room:
// the server revokes membership. Automatic rooms are left too.
func (h *Hub) LeaveUser(ctx context.Context, userID, name string) error {
	return h.membership(ctx, relayLeave, userID, name)
}

func (h *Hub) membership(ctx context.Context, kind byte, userID, name string) error {
	if h.closing.Load() {
		return ErrShuttingDown
	}
	if userID == "" {
		return fmt.Errorf("hub: empty user id")
	}
	if !room.Valid(name) {
		return fmt.Errorf("hub: %w: %q", room.ErrInvalidName, name)
	}
	_, err := h.broker.Publish(ctx, topicUserPrefix+userID, appendRelayRoom(nil, kind, name), adapter.PublishOptions{})
	return err
}
