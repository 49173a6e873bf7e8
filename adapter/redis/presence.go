package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// DefaultPresenceQueue is the queue length when PresenceOptions.QueueSize
// is 0.
const DefaultPresenceQueue = 10_000

// PresenceOptions configures NewPresence. Only Client or Addrs is
// required; every other zero value is the documented default.
type PresenceOptions struct {
	// Client, when set, carries the commands, so that it can share one
	// rueidis client with the application. Presence does not close it. Set
	// either Client or Addrs and its companions, not both.
	Client rueidis.Client
	// Addrs, Cluster, Username, Password and ClientOption describe a Redis
	// or a Redis Cluster exactly as in Options; Presence then owns its
	// client and Close closes it.
	Addrs              []string
	Cluster            bool
	Username, Password string
	ClientOption       *rueidis.ClientOption
	// Prefix starts every key ("<prefix>presence:{<room>}"). Default
	// DefaultPrefix. In a cluster it may not contain '{' or '}'.
	Prefix string

	// TTL is how long an entry outlives the last refresh of the node that
	// wrote it: how long a crashed node's users still appear present. At
	// least 100ms. Default DefaultLeaseTTL.
	TTL time.Duration
	// RefreshInterval is how often the node writes all its entries again;
	// it must be shorter than TTL. Default TTL/3.
	RefreshInterval time.Duration
	// QueueSize bounds the Add and Remove calls waiting to be written.
	// Calls arriving while it is full are dropped and counted in
	// PresenceStats.Dropped. Default DefaultPresenceQueue.
	QueueSize int
	// Timeout bounds each round trip, Users' included. Default
	// DefaultTimeout.
	Timeout time.Duration
	// Logger receives outages, recoveries and dropped calls. Default:
	// discard.
	Logger *slog.Logger
}

// PresenceStats are counters since NewPresence. They only grow.
type PresenceStats struct {
	// Dropped counts Add and Remove calls lost to a full queue. A lost Add
	// is written by the next refresh; a lost Remove leaves its entry to
	// expire within TTL.
	Dropped uint64
	// WriteErrors counts pipelines of writes that failed.
	WriteErrors uint64
}

// Presence records who is in which room in Redis, so that every node sees
// the users of every node. It implements hub.Presence: plug it into
// hub.Options.Presence.
//
// A room is the sorted set "<prefix>presence:{<room>}"; each member is one
// connection of one user, scored by its expiry on the Redis server's
// clock. Add and Remove never block: they update the node's own record of
// its memberships and queue the write for one goroutine, which pipelines
// the writes and, every RefreshInterval, writes every membership the node
// holds again. That refresh keeps the entries alive, lets a crashed node's
// entries expire within TTL, and repairs entries lost to a full queue or a
// Redis outage. Safe for concurrent use.
type Presence struct {
	st       *store
	ttlArg   string // TTL in milliseconds, as the scripts take it
	interval time.Duration
	queue    chan presenceOp
	worker   // the writer goroutine's lifecycle
	stats    struct{ dropped, writeErrors atomic.Uint64 }

	mu    sync.Mutex                     // guards rooms, and orders the queue like them
	rooms map[string]map[string]struct{} // room → members on this node
}

type presenceOp struct {
	room, member string
	add          bool
}

// NewPresence validates opts, connects unless opts.Client is set, and
// starts the writer goroutine. It fails when the options are invalid or
// Redis cannot be reached.
func NewPresence(opts PresenceOptions) (*Presence, error) {
	switch {
	case opts.QueueSize < 0:
		return nil, errors.New("redis: PresenceOptions.QueueSize is negative")
	case opts.QueueSize == 0:
		opts.QueueSize = DefaultPresenceQueue
	}
	ttl, interval, err := ttlAndInterval("PresenceOptions.TTL", opts.TTL, opts.RefreshInterval)
	if err != nil {
		return nil, err
	}
	st, err := open("presence", connConfig{client: opts.Client, addrs: opts.Addrs, cluster: opts.Cluster,
		username: opts.Username, password: opts.Password, clientOption: opts.ClientOption,
		prefix: opts.Prefix, timeout: opts.Timeout, logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	p := &Presence{
		st:       st,
		ttlArg:   strconv.FormatInt(ttl.Milliseconds(), 10),
		interval: interval,
		queue:    make(chan presenceOp, opts.QueueSize),
		worker:   newWorker(),
		rooms:    make(map[string]map[string]struct{}),
	}
	go p.run()
	return p, nil
}

// member encodes a connection as "<len(user)>:<user>:<connID>", which
// decodes unambiguously whatever bytes the ids hold.
func member(user, connID string) string {
	return strconv.Itoa(len(user)) + ":" + user + ":" + connID
}

func userOf(m string) (string, bool) {
	n, rest, ok := strings.Cut(m, ":")
	if !ok {
		return "", false
	}
	l, err := strconv.Atoi(n)
	if err != nil || l < 0 || len(rest) <= l || rest[l] != ':' {
		return "", false
	}
	return rest[:l], true
}

// writeScript adds and removes members. KEYS[1] the room; ARGV TTL (ms),
// the number n of members to add, those n members, then the members to
// remove. It returns 1: a script that returns nothing answers a nil reply,
// which rueidis reports as an error (rueidis.Nil), and every write would
// count as a failure.
var writeScript = newScript(nowMs + `
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if #ARGV > 2 + n then
  redis.call('ZREM', KEYS[1], unpack(ARGV, 3 + n))
end
if n > 0 then
  local exp = string.format('%d', now + ttl)
  local args = {}
  for i = 3, 2 + n do
    args[#args + 1] = exp
    args[#args + 1] = ARGV[i]
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
` + keepKey + `
return 1
`)

// usersScript drops the room's expired members and returns the others.
var usersScript = newScript(nowMs + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// Add records that connID of userID is in room. It never blocks.
func (p *Presence) Add(room, userID, connID string) { p.update(room, member(userID, connID), true) }

// Remove records that connID of userID left room. It never blocks.
func (p *Presence) Remove(room, userID, connID string) {
	p.update(room, member(userID, connID), false)
}

func (p *Presence) update(room, m string, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return
	}
	members := p.rooms[room]
	_, present := members[m]
	switch {
	case add && present, !add && !present:
		return
	case add && members == nil:
		members = make(map[string]struct{}, 1)
		p.rooms[room] = members
		fallthrough
	case add:
		members[m] = struct{}{}
	default:
		delete(members, m)
		if len(members) == 0 {
			delete(p.rooms, room)
		}
	}
	// Under mu, so the queue holds the calls in the order they changed rooms.
	select {
	case p.queue <- presenceOp{room: room, member: m, add: add}:
	default:
		logCount(p.st.log, "redis_presence_dropped", p.stats.dropped.Add(1))
	}
}

// Users returns the users with at least one live connection in room on
// any node, sorted, and an empty slice for an empty room. An Add is
// visible once the writer goroutine has sent it, normally within a round
// trip. It returns within Timeout; an error wraps ErrUnavailable when
// Redis could not be reached.
func (p *Presence) Users(ctx context.Context, room string) ([]string, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	rctx, cancel := p.st.withTimeout(ctx)
	defer cancel()
	members, err := usersScript.exec(rctx, p.st.client, call{key: p.st.key("presence", room)}).AsStrSlice()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("redis: presence of %q: %w", room, p.st.fail(err))
	}
	p.st.ok()
	users := make([]string, 0, len(members))
	for _, m := range members {
		if u, ok := userOf(m); ok {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return slices.Compact(users), nil
}

// run is the only writer: queued calls as they come, and every membership
// of the node every interval. One goroutine keeps them ordered, so a
// refresh never overtakes a Remove.
func (p *Presence) run() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case op := <-p.queue:
			p.flush(p.drain([]presenceOp{op}))
		case <-t.C:
			p.refresh()
		case <-p.stop:
			if p.cleanup {
				// Queued calls first, then a removal of every entry left:
				// flush lets the last call for a member win.
				ops := p.drain(nil)
				p.mu.Lock()
				for room, members := range p.rooms {
					for m := range members {
						ops = append(ops, presenceOp{room: room, member: m})
					}
				}
				clear(p.rooms)
				p.mu.Unlock()
				p.flush(ops)
			}
			return
		}
	}
}

// drain appends the calls already queued to batch, at most a queue's
// worth, so that a steady stream still lets the ticker through.
func (p *Presence) drain(batch []presenceOp) []presenceOp {
	for range cap(p.queue) {
		select {
		case op := <-p.queue:
			batch = append(batch, op)
		default:
			return batch
		}
	}
	return batch
}

// flush writes ops with one script call per room, the last call for each
// member deciding whether it is added or removed.
func (p *Presence) flush(ops []presenceOp) {
	if len(ops) == 0 {
		return
	}
	final := make(map[string]map[string]bool)
	for _, op := range ops {
		if final[op.room] == nil {
			final[op.room] = make(map[string]bool)
		}
		final[op.room][op.member] = op.add
	}
	var calls []call
	for room, members := range final {
		var adds, removes []string
		for m, add := range members {
			if add {
				adds = append(adds, m)
			} else {
				removes = append(removes, m)
			}
		}
		calls = append(calls, p.writeCalls(room, adds, removes)...)
	}
	p.exec(calls)
}

// refresh writes every membership of the node again.
func (p *Presence) refresh() {
	p.mu.Lock()
	var calls []call
	for room, members := range p.rooms {
		calls = append(calls, p.writeCalls(room, keys(members), nil)...)
	}
	p.mu.Unlock()
	p.exec(calls)
}

func (p *Presence) writeCalls(room string, adds, removes []string) []call {
	key := p.st.key("presence", room)
	var calls []call
	for _, c := range chunk(key, nil, adds) {
		calls = append(calls, call{key: key, args: append([]string{p.ttlArg, strconv.Itoa(len(c.args))}, c.args...)})
	}
	for _, c := range chunk(key, nil, removes) {
		calls = append(calls, call{key: key, args: append([]string{p.ttlArg, "0"}, c.args...)})
	}
	return calls
}

func (p *Presence) exec(calls []call) {
	if len(calls) == 0 {
		return
	}
	ctx, cancel := p.st.withTimeout(context.Background())
	defer cancel()
	if err := firstErr(writeScript.execMulti(ctx, p.st.client, calls)); err != nil {
		p.stats.writeErrors.Add(1)
		p.st.fail(err)
		return
	}
	p.st.ok()
}

func keys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

// Stats returns the Presence counters.
func (p *Presence) Stats() PresenceStats {
	return PresenceStats{Dropped: p.stats.dropped.Load(), WriteErrors: p.stats.writeErrors.Load()}
}

// Close writes the calls still queued, removes every entry of this node
// within Timeout, so that its users stop appearing at once rather than
// after TTL, stops the goroutine, and closes the client unless it was
// given in PresenceOptions.Client. Add and Remove then do nothing and
// Users fails with ErrClosed. Close is idempotent.
func (p *Presence) Close() error {
	p.shutdown(true)
	return nil
}

// shutdown stops the goroutine; without cleanup the entries stay in Redis
// until they expire, as after a crash.
func (p *Presence) shutdown(cleanup bool) {
	if p.stopAndWait(&p.mu, cleanup) {
		p.st.close()
	}
}
