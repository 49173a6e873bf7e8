package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/protocol"
)

// Defaults of LimiterOptions.
const (
	// DefaultPerUser is the per-user limit when LimiterOptions.PerUser is 0,
	// the same as guard.LimitsOptions.
	DefaultPerUser = 5
)

// Retry-After values of the Limiter's refusals: the same hint as guard's
// node-local limit for a user at the limit, and a short one for an outage.
const (
	userLimitRetryAfter   = 10 * time.Second
	unavailableRetryAfter = 5 * time.Second
)

// releaseQueue bounds the releases waiting for their ZREM; one over it is
// left to expire within LeaseTTL.
const releaseQueue = 10_000

var errNoUser = errors.New("redis: Admit needs a non-empty user id")

// LimiterOptions configures NewLimiter. Only Client or Addrs is required;
// every other zero value is the documented default.
type LimiterOptions struct {
	// Client, when set, carries the Limiter's commands, so that it can share
	// one rueidis client with the application. The Limiter does not close
	// it. Set either Client or Addrs and its companions, not both.
	Client rueidis.Client
	// Addrs, Cluster, Username, Password and ClientOption describe a Redis
	// or a Redis Cluster exactly as in Options; the Limiter then owns its
	// client and Close closes it.
	Addrs              []string
	Cluster            bool
	Username, Password string
	ClientOption       *rueidis.ClientOption
	// Prefix starts every key ("<prefix>lease:{<user id>}"). Default
	// DefaultPrefix. In a cluster it may not contain '{' or '}'.
	Prefix string

	// PerUser is how many connections one user may hold at once across
	// every node sharing the Redis and Prefix. All nodes should agree on
	// it: each enforces its own value. Default DefaultPerUser.
	PerUser int
	// LeaseTTL is how long a node's leases outlive its last refresh: the
	// time a crashed node's users wait for their slots. At least 100ms.
	// Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// RefreshInterval is how often the node extends all its leases; it must
	// be shorter than LeaseTTL, and a third of it leaves room for two
	// failed refreshes. Default LeaseTTL/3.
	RefreshInterval time.Duration
	// Timeout bounds each round trip, Admit's included. Default
	// DefaultTimeout.
	Timeout time.Duration
	// FailOpen admits users while Redis cannot be reached (or answers with
	// an error), counting only this node's connections against PerUser.
	// The leases are written once Redis is back. Default false: Admit then
	// refuses with 503 UNAVAILABLE. Failing closed means a Redis outage
	// stops new connections (existing ones are untouched); failing open
	// keeps the service up but lets a user hold PerUser connections on
	// every node until Redis returns.
	FailOpen bool
	// Logger receives outages, recoveries and lost leases; never tokens.
	// Default: discard.
	Logger *slog.Logger
}

// LimiterStats are counters since NewLimiter. They only grow.
type LimiterStats struct {
	// Admitted counts slots taken, failed-open ones included.
	Admitted uint64
	// Refused counts Admit calls refused for the per-user limit.
	Refused uint64
	// Unavailable counts Admit calls that met a Redis error: refused with
	// 503, or admitted with FailOpen.
	Unavailable uint64
	// Restored counts leases written again after Redis lost them (a
	// restart, a failover, a partition longer than LeaseTTL, FailOpen).
	Restored uint64
	// DroppedReleases counts released leases left to expire within
	// LeaseTTL because the queue of removals was full.
	DroppedReleases uint64
}

// Limiter caps each user's concurrent connections across every node that
// shares a Redis. It is the cluster-wide counterpart of guard.Limits'
// Admit, and plugs into hub.Options.Admit the same way.
//
// Every admitted connection holds a lease: a member of the sorted set
// "<prefix>lease:{<user id>}", scored by its expiry on the Redis server's
// clock. Admit is one Lua script that drops expired leases, counts the
// rest and adds one if the count is below PerUser. One goroutine per
// Limiter extends all the node's leases every RefreshInterval, so the
// leases of a node that dies expire within LeaseTTL and free its users'
// slots. Safe for concurrent use.
type Limiter struct {
	st       *store
	perUser  int
	ttlArg   string // LeaseTTL in milliseconds, as the scripts take it
	interval time.Duration
	failOpen bool
	node     string        // random prefix of this Limiter's lease ids
	seq      atomic.Uint64 // suffix of the next lease id
	releases chan lease    // released leases waiting for their ZREM
	worker                 // the refresh goroutine's lifecycle
	stats    struct{ admitted, refused, unavailable, restored, dropped atomic.Uint64 }

	mu     sync.Mutex                     // guards leases
	leases map[string]map[string]struct{} // user id → ids of the leases this node holds
}

type lease struct{ user, id string }

// NewLimiter validates opts, connects unless opts.Client is set, and
// starts the refresh goroutine. It fails when the options are invalid or
// Redis cannot be reached.
func NewLimiter(opts LimiterOptions) (*Limiter, error) {
	switch {
	case opts.PerUser < 0:
		return nil, errors.New("redis: LimiterOptions.PerUser is negative")
	case opts.PerUser == 0:
		opts.PerUser = DefaultPerUser
	}
	ttl, interval, err := ttlAndInterval("LimiterOptions.LeaseTTL", opts.LeaseTTL, opts.RefreshInterval)
	if err != nil {
		return nil, err
	}
	st, err := open("limiter", connConfig{client: opts.Client, addrs: opts.Addrs, cluster: opts.Cluster,
		username: opts.Username, password: opts.Password, clientOption: opts.ClientOption,
		prefix: opts.Prefix, timeout: opts.Timeout, logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	l := &Limiter{
		st:       st,
		perUser:  opts.PerUser,
		ttlArg:   strconv.FormatInt(ttl.Milliseconds(), 10),
		interval: interval,
		failOpen: opts.FailOpen,
		node:     hex.EncodeToString(id[:]) + "-",
		releases: make(chan lease, releaseQueue),
		worker:   newWorker(),
		leases:   make(map[string]map[string]struct{}),
	}
	go l.run()
	return l, nil
}

// ttlAndInterval validates a TTL and its refresh interval and fills in
// their defaults.
func ttlAndInterval(field string, ttl, interval time.Duration) (time.Duration, time.Duration, error) {
	switch {
	case ttl == 0:
		ttl = DefaultLeaseTTL
	case ttl < 100*time.Millisecond:
		return 0, 0, fmt.Errorf("redis: %s %s is below 100ms", field, ttl)
	}
	switch {
	case interval == 0:
		interval = ttl / 3
	case interval < 10*time.Millisecond || interval >= ttl:
		return 0, 0, fmt.Errorf("redis: refresh interval %s must be at least 10ms and below the TTL %s", interval, ttl)
	}
	return ttl, interval, nil
}

// admitScript takes a lease if the user holds fewer than the limit.
// KEYS[1] the user's lease set; ARGV lease id, TTL (ms), limit.
// Returns {1, leases held} when admitted, {0, leases held} when not.
var admitScript = newScript(nowMs + `
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  return {0, n}
end
redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[1])
` + keepKey + `
return {1, n + 1}
`)

// refreshScript extends leases. KEYS[1] the lease set; ARGV TTL (ms),
// mode, lease ids. In mode "xx" only leases still present are extended
// and the missing ones are returned, so that a lease released meanwhile
// is not brought back; in mode "add" every lease is written.
var refreshScript = newScript(nowMs + `
local ttl = tonumber(ARGV[1])
local exp = string.format('%d', now + ttl)
local missing = {}
for i = 3, #ARGV do
  if ARGV[2] == 'xx' and not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    missing[#missing + 1] = ARGV[i]
  else
    redis.call('ZADD', KEYS[1], exp, ARGV[i])
  end
end
` + keepKey + `
return missing
`)

// Admit takes one of userID's connection slots, across every node. Over
// the limit it returns a *protocol.Refusal with status 429, code
// CONNECTION_LIMIT_EXCEEDED and a Retry-After, wrapping guard.ErrUserLimit
// exactly like guard.Limits.Admit, so errors.Is works for both. When Redis
// fails it returns a *protocol.Refusal with status 503, code UNAVAILABLE,
// wrapping ErrUnavailable, unless FailOpen is set. It returns within
// Timeout and fails if ctx is done first.
//
// release gives the slot back without blocking: the removal is queued for
// the Limiter's goroutine. It is never nil (a no-op on error) and may be
// called any number of times.
func (l *Limiter) Admit(ctx context.Context, userID string) (release func(), err error) {
	noop := func() {}
	switch {
	case userID == "":
		return noop, errNoUser
	case l.closed.Load():
		return noop, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return noop, err
	}
	// This node's own leases are a lower bound of the user's count: no
	// round trip is needed to refuse them.
	if l.held(userID) >= l.perUser {
		return noop, l.refuse()
	}
	id := l.node + strconv.FormatUint(l.seq.Add(1), 36)
	rctx, cancel := l.st.withTimeout(ctx)
	reply, err := admitScript.exec(rctx, l.st.client, call{
		key:  l.st.key("lease", userID),
		args: []string{id, l.ttlArg, strconv.Itoa(l.perUser)},
	}).AsIntSlice()
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		return noop, ctx.Err()
	case err != nil:
		l.stats.unavailable.Add(1)
		err = l.st.fail(err)
		if !l.failOpen {
			return noop, &protocol.Refusal{
				Status:     http.StatusServiceUnavailable,
				Code:       protocol.CodeUnavailable,
				Message:    "connection limits are unavailable",
				RetryAfter: unavailableRetryAfter,
				Err:        ErrUnavailable,
			}
		}
		// Held locally, the lease is written by the next refresh that
		// reaches Redis.
		l.st.log.Debug("redis_limiter_failed_open", slog.String("error", err.Error()))
	case len(reply) != 2:
		return noop, fmt.Errorf("redis: admit script replied %v", reply)
	case reply[0] == 0:
		l.st.ok()
		return noop, l.refuse()
	default:
		l.st.ok()
	}
	if !l.hold(userID, id) {
		return noop, ErrClosed // the lease expires within LeaseTTL
	}
	l.stats.admitted.Add(1)
	var once sync.Once
	return func() { once.Do(func() { l.release(userID, id) }) }, nil
}

func (l *Limiter) refuse() error {
	l.stats.refused.Add(1)
	return &protocol.Refusal{
		Status:     http.StatusTooManyRequests,
		Code:       protocol.CodeConnectionLimit,
		Message:    "too many connections for this user",
		RetryAfter: userLimitRetryAfter,
		Err:        guard.ErrUserLimit,
	}
}

func (l *Limiter) held(user string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.leases[user])
}

// hold records a lease as this node's, unless the Limiter is closing.
func (l *Limiter) hold(user, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	ids := l.leases[user]
	if ids == nil {
		ids = make(map[string]struct{}, 1)
		l.leases[user] = ids
	}
	ids[id] = struct{}{}
	return true
}

// release forgets the lease, so it is no longer refreshed, and queues its
// removal. If the queue is full the lease still expires within LeaseTTL.
func (l *Limiter) release(user, id string) {
	l.mu.Lock()
	ids := l.leases[user]
	_, ok := ids[id]
	delete(ids, id)
	if len(ids) == 0 {
		delete(l.leases, user)
	}
	l.mu.Unlock()
	if !ok {
		return // removed by Close already
	}
	select {
	case l.releases <- lease{user, id}:
	default:
		logCount(l.st.log, "redis_limiter_release_dropped", l.stats.dropped.Add(1))
	}
}

// run owns every write but Admit's: removals as they are released, and
// the refresh of all leases every interval. One goroutine keeps them
// ordered, so a refresh never overtakes a removal of the same lease.
func (l *Limiter) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case r := <-l.releases:
			l.remove(l.drain([]lease{r}))
		case <-t.C:
			l.refresh()
		case <-l.stop:
			if l.cleanup {
				l.mu.Lock()
				var all []lease
				for user, ids := range l.leases {
					for id := range ids {
						all = append(all, lease{user, id})
					}
				}
				clear(l.leases)
				l.mu.Unlock()
				l.remove(l.drain(all))
			}
			return
		}
	}
}

// drain appends the releases already queued to batch.
func (l *Limiter) drain(batch []lease) []lease {
	for {
		select {
		case r := <-l.releases:
			batch = append(batch, r)
		default:
			return batch
		}
	}
}

// remove deletes leases with one ZREM per user, pipelined.
func (l *Limiter) remove(leases []lease) {
	if len(leases) == 0 {
		return
	}
	byUser := make(map[string][]string)
	for _, r := range leases {
		byUser[r.user] = append(byUser[r.user], r.id)
	}
	c := l.st.client
	var cmds rueidis.Commands
	for user, ids := range byUser {
		cmds = append(cmds, c.B().Zrem().Key(l.st.key("lease", user)).Member(ids...).Build())
	}
	ctx, cancel := l.st.withTimeout(context.Background())
	defer cancel()
	for len(cmds) > 0 {
		batch := cmds[:min(len(cmds), maxCalls)]
		cmds = cmds[len(batch):]
		if err := firstErr(c.DoMulti(ctx, batch...)); err != nil {
			l.st.fail(err)
			return // what is left expires within LeaseTTL
		}
	}
	l.st.ok()
}

// refresh extends every lease this node holds, then writes again those
// Redis lost that are still held.
func (l *Limiter) refresh() {
	calls := l.calls("xx", nil)
	if len(calls) == 0 {
		return
	}
	ctx, cancel := l.st.withTimeout(context.Background())
	defer cancel()
	results := refreshScript.execMulti(ctx, l.st.client, calls)
	if err := firstErr(results); err != nil {
		l.st.fail(err)
		return
	}
	l.st.ok()
	missing := make(map[string]struct{})
	for _, r := range results {
		ids, _ := r.AsStrSlice()
		for _, id := range ids {
			missing[id] = struct{}{}
		}
	}
	if len(missing) == 0 {
		return
	}
	calls = l.calls("add", missing)
	if len(calls) == 0 {
		return // all released meanwhile
	}
	if err := firstErr(refreshScript.execMulti(ctx, l.st.client, calls)); err != nil {
		l.st.fail(err)
		return
	}
	var n int
	for _, c := range calls {
		n += len(c.args) - 2
	}
	l.stats.restored.Add(uint64(n))
	l.st.log.Warn("redis_leases_restored", slog.Int("leases", n))
}

// calls builds refresh script calls in mode for the leases held now, or
// for those of them in only when it is not nil.
func (l *Limiter) calls(mode string, only map[string]struct{}) []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	var calls []call
	head := []string{l.ttlArg, mode}
	for user, ids := range l.leases {
		members := make([]string, 0, len(ids))
		for id := range ids {
			if _, ok := only[id]; ok || only == nil {
				members = append(members, id)
			}
		}
		calls = append(calls, chunk(l.st.key("lease", user), head, members)...)
	}
	return calls
}

// Stats returns the Limiter's counters.
func (l *Limiter) Stats() LimiterStats {
	return LimiterStats{
		Admitted:        l.stats.admitted.Load(),
		Refused:         l.stats.refused.Load(),
		Unavailable:     l.stats.unavailable.Load(),
		Restored:        l.stats.restored.Load(),
		DroppedReleases: l.stats.dropped.Load(),
	}
}

// Close stops the refresh goroutine and removes the leases this node
// still holds, within Timeout, so that its users' slots free at once
// rather than after LeaseTTL; it closes the client unless it was given in
// LimiterOptions.Client. Admit then fails with ErrClosed and release does
// nothing. Close is idempotent.
func (l *Limiter) Close() error {
	l.shutdown(true)
	return nil
}

// shutdown stops the goroutine; without cleanup the leases stay in Redis
// until they expire, as after a crash.
func (l *Limiter) shutdown(cleanup bool) {
	if l.stopAndWait(&l.mu, cleanup) {
		l.st.close()
	}
}
