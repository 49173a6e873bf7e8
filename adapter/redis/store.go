package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Defaults shared by LimiterOptions, PresenceOptions and ThrottleOptions.
const (
	// DefaultTimeout bounds one round trip of the Limiter, Presence and
	// Throttle when their Timeout is 0.
	DefaultTimeout = 2 * time.Second
	// DefaultLeaseTTL is how long a lease or a presence entry outlives the
	// last refresh of the node that holds it, when the TTL field is 0.
	DefaultLeaseTTL = 30 * time.Second
)

// ErrClosed is returned by a Limiter, Presence or Throttle used after Close.
var ErrClosed = errors.New("redis: closed")

// Batching bounds: a script call carries at most maxMembers members, so
// that Lua's unpack stays far below its stack limit, and one pipeline at
// most maxCalls script calls.
const (
	maxMembers = 500
	maxCalls   = 256
)

// connConfig is the connection half of the options of NewLimiter,
// NewPresence and NewThrottle, which share its validation.
type connConfig struct {
	client             rueidis.Client
	addrs              []string
	cluster            bool
	username, password string
	clientOption       *rueidis.ClientOption
	prefix             string
	timeout            time.Duration
	logger             *slog.Logger
}

// store is an open connection and what every command needs: the key
// prefix, the round-trip bound, and the outage state that is logged on
// change only.
type store struct {
	client  rueidis.Client
	owned   bool // the client was created here, so Close closes it
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	what    string      // "limiter", "presence" or "throttle", for log lines
	down    atomic.Bool // the last command failed; flips are logged
}

// open validates c and connects, unless c.client is given.
func open(what string, c connConfig) (*store, error) {
	switch {
	case c.timeout < 0:
		return nil, fmt.Errorf("redis: %s Timeout is negative", what)
	case c.timeout == 0:
		c.timeout = DefaultTimeout
	}
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	s := &store{prefix: c.prefix, timeout: c.timeout, log: c.logger, what: what}
	if c.client != nil {
		if len(c.addrs) > 0 || c.cluster || c.username != "" || c.password != "" || c.clientOption != nil {
			return nil, fmt.Errorf("redis: %s options set both Client and connection fields", what)
		}
		s.client = c.client
		return s, s.checkPrefix(c.client.Mode() == rueidis.ClientModeCluster)
	}
	o := Options{Addrs: c.addrs, Cluster: c.cluster, Username: c.username, Password: c.password,
		ClientOption: c.clientOption, PublishTimeout: c.timeout}
	if len(o.Addrs) == 0 {
		return nil, fmt.Errorf("redis: %s options need Client or Addrs", what)
	}
	for _, a := range o.Addrs {
		if a == "" {
			return nil, fmt.Errorf("redis: %s Addrs holds an empty address", what)
		}
	}
	o.Cluster = o.Cluster || len(o.Addrs) > 1
	if err := s.checkPrefix(o.Cluster); err != nil {
		return nil, err
	}
	client, err := rueidis.NewClient(o.clientOption(o.Addrs, !o.Cluster))
	if err != nil {
		if client != nil {
			client.Close()
		}
		return nil, fmt.Errorf("redis: %s: connect %v: %w", what, o.Addrs, err)
	}
	if o.Cluster && client.Mode() != rueidis.ClientModeCluster {
		client.Close()
		return nil, fmt.Errorf("redis: %v is not a Redis Cluster", o.Addrs)
	}
	s.client, s.owned = client, true
	return s, nil
}

// checkPrefix refuses a brace in a cluster prefix: the first {…} of a key
// is its hash tag, and it must be the one key() puts around the id.
func (s *store) checkPrefix(cluster bool) error {
	if cluster && strings.ContainsAny(s.prefix, "{}") {
		return fmt.Errorf("redis: %s Prefix %q contains a hash tag brace", s.what, s.prefix)
	}
	return nil
}

// key returns prefix + kind + ":{" + id + "}". The braces make id the hash
// tag, so every key of one user or room lives on one cluster slot, and the
// closing brace keeps keys of different ids distinct.
func (s *store) key(kind, id string) string {
	return s.prefix + kind + ":{" + id + "}"
}

func (s *store) close() {
	if s.owned {
		s.client.Close()
	}
}

// fail records a failed command and returns err, wrapping ErrUnavailable
// unless Redis itself answered with an error. The first failure after a
// success is logged at Warn; the rest are not, so an outage is one line.
func (s *store) fail(err error) error {
	if !isRedisErr(err) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !s.down.Swap(true) {
		s.log.Warn("redis_"+s.what+"_unavailable", slog.String("error", err.Error()))
	}
	return err
}

// ok records a successful command, logging the end of an outage.
func (s *store) ok() {
	if s.down.Load() && s.down.Swap(false) {
		s.log.Info("redis_" + s.what + "_recovered")
	}
}

// withTimeout bounds ctx by the store's Timeout.
func (s *store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// script is a Lua script run with EVALSHA, falling back to EVAL when the
// server does not have it yet (NOSCRIPT), so that the source crosses the
// network once per server rather than once per call. Unlike
// rueidis.Lua.ExecMulti it does not SCRIPT LOAD on every node before
// each pipeline.
type script struct{ src, sha string }

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

// call is one execution of a script on one key.
type call struct {
	key  string
	args []string
}

func (sc *script) cmd(c rueidis.Client, cl call, eval bool) rueidis.Completed {
	if eval {
		return c.B().Eval().Script(sc.src).Numkeys(1).Key(cl.key).Arg(cl.args...).Build()
	}
	return c.B().Evalsha().Sha1(sc.sha).Numkeys(1).Key(cl.key).Arg(cl.args...).Build()
}

func (sc *script) exec(ctx context.Context, c rueidis.Client, cl call) rueidis.RedisResult {
	r := c.Do(ctx, sc.cmd(c, cl, false))
	if noScript(r.Error()) {
		r = c.Do(ctx, sc.cmd(c, cl, true))
	}
	return r
}

// execMulti pipelines calls, at most maxCalls per round trip, and returns
// one result per call in order.
func (sc *script) execMulti(ctx context.Context, c rueidis.Client, calls []call) []rueidis.RedisResult {
	out := make([]rueidis.RedisResult, 0, len(calls))
	for len(calls) > 0 {
		batch := calls[:min(len(calls), maxCalls)]
		calls = calls[len(batch):]
		cmds := make(rueidis.Commands, len(batch))
		for i, cl := range batch {
			cmds[i] = sc.cmd(c, cl, false)
		}
		res := c.DoMulti(ctx, cmds...)
		var retry []int
		for i, r := range res {
			if noScript(r.Error()) {
				retry = append(retry, i)
			}
		}
		if len(retry) > 0 {
			cmds = cmds[:0]
			for _, i := range retry {
				cmds = append(cmds, sc.cmd(c, batch[i], true))
			}
			for j, r := range c.DoMulti(ctx, cmds...) {
				res[retry[j]] = r
			}
		}
		out = append(out, res...)
	}
	return out
}

func noScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

// firstErr returns the first error among results.
func firstErr(results []rueidis.RedisResult) error {
	for _, r := range results {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

// chunk splits members into calls on key of at most maxMembers members
// each, every call's arguments starting with head.
func chunk(key string, head []string, members []string) []call {
	var calls []call
	for len(members) > 0 {
		n := min(len(members), maxMembers)
		args := make([]string, 0, len(head)+n)
		args = append(append(args, head...), members[:n]...)
		calls = append(calls, call{key: key, args: args})
		members = members[n:]
	}
	return calls
}

// nowMs is the Lua preamble every script starts with: scores are
// expiry times on the Redis server's clock, never on a node's, so that
// clock skew between nodes cannot expire another node's entries early. In
// a cluster each key is only ever read and written on its own shard, so
// one clock decides for it.
const nowMs = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// keepKey is the Lua epilogue that drops expired members and makes the key
// outlive its newest member by at least ttl (never shortening a longer
// expiry that a node with a larger TTL set), so that an abandoned key
// vanishes on its own.
const keepKey = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
end
`

// logCount logs the 1st, 2nd, 4th, 8th… occurrence of a counted event, so
// that a flood is visible without flooding the log.
func logCount(l *slog.Logger, event string, n uint64, attrs ...slog.Attr) {
	if n&(n-1) == 0 {
		l.LogAttrs(context.Background(), slog.LevelWarn, event, append(attrs, slog.Uint64("total", n))...)
	}
}

// worker is the lifecycle of the one goroutine a Limiter or a Presence runs:
// it stops on stop, closes done when it returns, and removes this node's
// entries on the way out when cleanup is set.
type worker struct {
	stop    chan struct{} // closed by stopAndWait
	done    chan struct{} // closed when the goroutine returns
	cleanup bool          // set before stop is closed
	closed  atomic.Bool
}

func newWorker() worker {
	return worker{stop: make(chan struct{}), done: make(chan struct{})}
}

// stopAndWait marks the worker closed under mu, the owner's lock, so that
// callers checking closed under it see a consistent view; then it stops the
// goroutine and waits for it. It reports false when already closed.
func (w *worker) stopAndWait(mu *sync.Mutex, cleanup bool) bool {
	mu.Lock()
	already := w.closed.Swap(true)
	mu.Unlock()
	if already {
		return false
	}
	w.cleanup = cleanup
	close(w.stop)
	<-w.done
	return true
}
