package hub

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/room"
)

// Bounds of a HistoryPolicy, which New enforces.
const (
	// MaxHistorySize is the largest HistoryPolicy.Size.
	MaxHistorySize = 10_000
	// MaxHistoryTTL is the longest HistoryPolicy.TTL.
	MaxHistoryTTL = 24 * time.Hour
	// DefaultMaxRecovery is Options.MaxRecovery when it is 0.
	DefaultMaxRecovery = 300
)

// HistoryPolicy says how much of the traffic of the rooms of one kind is
// kept, so that a client that comes back (after a reconnect, a deploy, a
// network switch) recovers what it missed. Every room of the kind has a
// stream of its own: the messages published to the room, numbered 1, 2, 3…
// within an epoch (see docs/PROTOCOL.md).
type HistoryPolicy struct {
	// Size is how many messages each room keeps, the oldest dropped first:
	// 1 to MaxHistorySize. Required.
	Size int
	// TTL is how long a message can be recovered, at most MaxHistoryTTL.
	// Default adapter.DefaultStreamTTL (2 minutes). The room's position
	// outlives it ten times (adapter.MetaTTLFactor), so that a client that
	// comes back later is told it cannot recover rather than given a new
	// stream that looks continuous.
	TTL time.Duration
}

// streamOptions validates the History option and derives each kind's
// stream options.
func streamOptions(policies map[string]HistoryPolicy) (map[string]adapter.StreamOptions, error) {
	out := make(map[string]adapter.StreamOptions, len(policies))
	for kind, p := range policies {
		if !room.Valid(kind) || strings.Contains(kind, ":") {
			return nil, fmt.Errorf("hub: History: %q is not a room kind", kind)
		}
		switch {
		case p.Size <= 0 || p.Size > MaxHistorySize:
			return nil, fmt.Errorf("hub: History[%q].Size %d must be between 1 and %d", kind, p.Size, MaxHistorySize)
		case p.TTL < 0 || p.TTL > MaxHistoryTTL:
			return nil, fmt.Errorf("hub: History[%q].TTL %v must be between 0 (default) and %v", kind, p.TTL, MaxHistoryTTL)
		}
		s, err := adapter.StreamOptions{Size: p.Size, TTL: p.TTL}.WithDefaults()
		if err != nil {
			return nil, fmt.Errorf("hub: History[%q]: %w", kind, err)
		}
		out[kind] = s
	}
	return out, nil
}

// route is where the messages of a room travel: the broker topic, and the
// topic's stream when the room's kind keeps history.
type route struct {
	topic  string
	room   string // the room name clients see
	stream adapter.StreamOptions
}

// keeps reports whether the route has a stream.
func (r route) keeps() bool { return r.stream.Enabled() }

// routeOf returns the route of a valid room name. A user room whose kind
// keeps history travels on the user's topic, which reaches every
// connection of the user by identity (see addUser): what ToUser sends and
// what is broadcast to the room "user:<id>" are then one stream, which a
// recovery of the room reads.
func (h *Hub) routeOf(name string) route {
	kind, arg, _ := room.Parse(name)
	r := route{topic: topicRoomPrefix + name, room: name, stream: h.streams[kind]}
	if kind == kindUser && r.keeps() && arg != "" {
		if id, err := room.Unescape(arg); err == nil {
			r.topic = topicUserPrefix + id
		}
	}
	return r
}

// userRoute returns the route of what is sent to userID: the user's topic,
// and, when user rooms keep history, the user room's name and stream.
func (h *Hub) userRoute(userID string) route {
	r := route{topic: topicUserPrefix + userID}
	if s := h.streams[kindUser]; s.Enabled() {
		if name := room.User(userID); room.Valid(name) {
			r.room, r.stream = name, s
		}
	}
	return r
}

// kindUser is the kind of the personal rooms (room.User).
const kindUser = "user"

// recoverEvent is the event that tells a client to recover a room (join it
// with since): the hub saw a gap in the room's stream that it could not
// repair. Client events cannot be named with '$'.
const recoverEvent = "$recover"

// historyReads lets concurrent reads of the same history on one node share
// one broker call: a node whose clients all come back at once (after a
// deploy) reads each room's missed messages once, not once per client.
type historyReads struct {
	mu sync.Mutex // guards m
	m  map[historyKey]*historyRead
}

type historyKey struct {
	topic string
	since uint64
	epoch string
}

// historyRead is one broker read; res and err are set before done closes.
type historyRead struct {
	done    chan struct{}
	res     adapter.HistoryResult
	entries []replayed // the entries decoded, when res is Complete
	err     error
}

// replayed is a stored entry decoded back into the message it was.
type replayed struct {
	offset uint64
	rl     relay
}

// read returns the history of r after since, sharing a read in progress
// with the same key. Only the topic's top is read when since is nil.
func (h *Hub) readHistory(ctx context.Context, r route, since *adapter.Position) (*historyRead, error) {
	q := adapter.HistoryQuery{Limit: h.opts.MaxRecovery, Stream: r.stream}
	if since != nil {
		q.Since = *since
	}
	k := historyKey{topic: r.topic, since: q.Since.Offset, epoch: q.Since.Epoch}
	h.reads.mu.Lock()
	rd, ok := h.reads.m[k]
	if !ok {
		rd = &historyRead{done: make(chan struct{})}
		if h.reads.m == nil {
			h.reads.m = make(map[historyKey]*historyRead)
		}
		h.reads.m[k] = rd
	}
	h.reads.mu.Unlock()
	if !ok {
		go h.doRead(rd, k, r.topic, q)
	}
	recoveryStep("reading")
	select {
	case <-rd.done:
		return rd, rd.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// doRead performs a shared read under a deadline of its own, so that the
// reader that started it going away does not fail the others.
func (h *Hub) doRead(rd *historyRead, k historyKey, topic string, q adapter.HistoryQuery) {
	defer func() {
		if p := recover(); p != nil { // the broker is user code
			h.log.Error("panic", slog.String("in", "history"), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			rd.err = fmt.Errorf("hub: history of %s: %v", topic, p)
		}
		h.reads.mu.Lock()
		delete(h.reads.m, k)
		h.reads.mu.Unlock()
		close(rd.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.HandlerTimeout)
	defer cancel()
	res, err := h.broker.History(ctx, topic, q)
	if err != nil {
		rd.err = fmt.Errorf("hub: history of %s: %w", topic, err)
		return
	}
	rd.res = res
	if !res.Complete {
		return
	}
	rd.entries = make([]replayed, 0, len(res.Entries))
	for _, e := range res.Entries {
		rl, err := parseRelay(e.Payload)
		if err != nil || rl.kind != relayMessage {
			// Only messages are stored; anything else is not ours, and
			// recovering around it would hide a hole.
			rd.res.Complete, rd.entries = false, nil
			rd.err = fmt.Errorf("hub: history of %s: entry %d: %w", topic, e.Offset, errRelay)
			return
		}
		rd.entries = append(rd.entries, replayed{offset: e.Offset, rl: rl})
	}
}
