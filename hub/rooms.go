package hub

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/room"
)

// join adds c to a room, makes sure the node is subscribed to it and
// records presence.
func (h *Hub) join(c *conn, name string) error {
	if _, err := h.index.Join(name, c); err != nil {
		return err
	}
	// Not only on the first join: a first joiner whose Subscribe failed
	// leaves, and a member that joined meanwhile must not stay unsubscribed.
	if err := h.subs.sync(topicRoomPrefix + name); err != nil {
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

// joinBy is join for a room the server joins c to (Context.Join, JoinConn,
// JoinUser).
func (h *Hub) joinBy(c *conn, name string) error {
	if c.tracker != nil && !c.isAuto(name) && !c.inRoom(name) {
		if r := h.routeOf(name); r.keeps() {
			return c.joinTracked(r, true)
		}
	}
	if err := h.join(c, name); err != nil {
		return err
	}
	c.joined(name, false)
	return nil
}

// joined tells a transport that keeps positions that c joined a room that
// is not one of its automatic rooms.
func (c *conn) joined(name string, byClient bool) {
	if c.tracker != nil && !c.isAuto(name) {
		c.tracker.Joined(name, byClient)
	}
}

// leave takes c out of a room, and out of presence if it was in the room.
func (h *Hub) leave(c *conn, name string) (left, last bool) {
	left, last = h.index.Leave(name, c)
	if left && c.tracker != nil {
		c.tracker.Left(name)
	}
	if left && h.opts.Presence != nil {
		h.opts.Presence.Remove(name, c.identity().UserID, c.id)
	}
	if left {
		// Only rooms with history have a cursor; what reaches c by
		// identity keeps its own.
		if r := h.routeOf(name); r.keeps() && r.topic != topicUserPrefix+c.identity().UserID {
			c.forgetCursor(name)
		}
	}
	if last {
		_ = h.subs.sync(topicRoomPrefix + name)
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
		_ = h.subs.sync(topicRoomPrefix + name)
	}
}

// Presence returns the users with at least one connection in room:
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
	return h.joinBy(c, name)
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
// members and the users with local connections. Joins and leaves of one room may race; instead of trusting the
// order of first/last events, sync compares the index with what the broker
// was told, under a per-room stripe lock, so the end state is always right.
type subscriptions struct {
	h       *Hub
	seed    maphash.Seed
	stripes [64]subStripe
	all     atomic.Bool // the all-nodes topic is subscribed
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

// sync makes the broker subscription of topic (a room's or a user's)
// match whether this node has a connection for it.
func (s *subscriptions) sync(topic string) error {
	st := &s.stripes[maphash.String(s.seed, topic)%uint64(len(s.stripes))]
	st.mu.Lock()
	defer st.mu.Unlock()
	_, have := st.on[topic]
	want := s.h.wanted(topic)
	if want == have {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if want {
		if err := s.h.broker.Subscribe(ctx, topic); err != nil {
			return err
		}
		st.on[topic] = struct{}{}
		return nil
	}
	delete(st.on, topic)
	if err := s.h.broker.Unsubscribe(ctx, topic); err != nil {
		s.h.log.Warn("unsubscribe_failed", slog.String("topic", topic), slog.String("error", err.Error()))
		return err
	}
	return nil
}

// wanted reports whether this node has a connection topic is for.
func (h *Hub) wanted(topic string) bool {
	if name, ok := strings.CutPrefix(topic, topicRoomPrefix); ok {
		// A user room with history travels on the user's topic.
		return h.index.Count(name) > 0 && h.routeOf(name).topic == topic
	}
	if user, ok := strings.CutPrefix(topic, topicUserPrefix); ok {
		h.connsMu.RLock()
		defer h.connsMu.RUnlock()
		return len(h.users[user]) > 0
	}
	return false
}

// syncAll subscribes the topic every node listens on.
func (s *subscriptions) syncAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.h.broker.Subscribe(ctx, topicAll); err != nil {
		return err
	}
	s.all.Store(true)
	return nil
}

// allOn reports whether the all-nodes topic is subscribed.
func (s *subscriptions) allOn() bool { return s.all.Load() }

// retryAll subscribes the all-nodes topic once the broker answers, backing
// off up to 5 s between tries, until the hub shuts down.
func (s *subscriptions) retryAll() {
	wait := 100 * time.Millisecond
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.h.stopped:
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.syncAll(); err == nil {
			s.h.log.Info("subscribed", slog.String("topic", topicAll))
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// addUser records c under its user, and subscribes the node to the user's
// topic: what is sent to a user reaches its connections by identity, not
// through a room they could leave.
func (h *Hub) addUser(c *conn, user string) error {
	h.connsMu.Lock()
	// A slice, not a set: a user has a connection or two per node, and an
	// idle connection should not pay for a map.
	h.users[user] = append(h.users[user], c)
	h.connsMu.Unlock()
	return h.subs.sync(topicUserPrefix + user)
}

// removeUser undoes addUser.
func (h *Hub) removeUser(c *conn, user string) {
	h.connsMu.Lock()
	conns := h.users[user]
	if i := slices.Index(conns, c); i >= 0 {
		conns = slices.Delete(conns, i, i+1)
	}
	if len(conns) == 0 {
		delete(h.users, user)
	} else {
		h.users[user] = conns
	}
	h.connsMu.Unlock()
	_ = h.subs.sync(topicUserPrefix + user)
}

// userConns returns the local connections of user.
func (h *Hub) userConns(user string) []*conn {
	h.connsMu.RLock()
	defer h.connsMu.RUnlock()
	return slices.Clone(h.users[user])
}
