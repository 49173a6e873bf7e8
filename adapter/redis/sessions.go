package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
)

// SessionsOptions configures NewSessions. Only Client or Addrs is
// required; every other zero value is the documented default.
type SessionsOptions struct {
	// Client, when set, carries the commands, so that it can share one
	// rueidis client with the application. Sessions does not close it.
	// Set either Client or Addrs and its companions, not both.
	Client rueidis.Client
	// Addrs, Cluster, Username, Password and ClientOption describe a Redis
	// or a Redis Cluster exactly as in Options; Sessions then owns its
	// client and Close closes it.
	Addrs              []string
	Cluster            bool
	Username, Password string
	ClientOption       *rueidis.ClientOption
	// Prefix starts every key ("<prefix>session:{<id>}"). Default
	// DefaultPrefix. In a cluster it may not contain '{' or '}'.
	Prefix string
	// Timeout bounds each round trip. Default DefaultTimeout.
	Timeout time.Duration
	// Logger receives outages and recoveries. Default: discard.
	Logger *slog.Logger
}

// Sessions is the adapter.SessionStore on Redis, shared by every node, so
// that a client can resume on any node the session it had on another.
//
// An entry is the string "<prefix>session:{<id>}", whose Redis TTL is the
// entry's: Redis expires it, so nothing of a client that never comes back
// stays behind, and the memory held is bounded by Redis' maxmemory. The id
// is the key's hash tag, so each entry lives on one cluster slot. Its value
// is "<version>:r<record>" for a record and "<version>:t" for the
// tombstone that Take and Delete leave, the version written in 20 decimal
// digits, zero-padded: the scripts compare versions as strings, since Lua
// numbers are doubles, exact only up to 2^53. A value in no such form
// (none is written by this package) counts as no entry. Each method but
// Touch is one Lua script, which Redis runs atomically: of two nodes
// taking one id, one gets the record. Redis keeps TTLs in whole
// milliseconds; a TTL is rounded up to the next one. A version of
// math.MaxUint64 is refused with adapter.ErrInvalidOptions: the tombstone
// that follows it would have no version above it. Errors never quote an
// id, which is the client's secret. Safe for concurrent use.
type Sessions struct {
	st     *store
	closed atomic.Bool
}

var _ adapter.SessionStore = (*Sessions)(nil)

// NewSessions validates opts and connects unless opts.Client is set. It
// fails when the options are invalid or Redis cannot be reached.
func NewSessions(opts SessionsOptions) (*Sessions, error) {
	st, err := open("sessions", connConfig{client: opts.Client, addrs: opts.Addrs, cluster: opts.Cluster,
		username: opts.Username, password: opts.Password, clientOption: opts.ClientOption,
		prefix: opts.Prefix, timeout: opts.Timeout, logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return &Sessions{st: st}, nil
}

// sessionHead is the Lua preamble of the session scripts. head parses the
// start of a value, as GETRANGE 0 21 returns it (or the whole value from
// GET), into its version and its kind, 'r' or 't'; nil for a missing key
// or a value in no known form. A script reads only that head when it does
// not need the record, rather than a record of up to 64 KiB.
const sessionHead = `
local function head(v)
  if not v or #v < 22 or string.sub(v, 21, 21) ~= ':' then return nil end
  local ver, kind = string.sub(v, 1, 20), string.sub(v, 22, 22)
  if (kind ~= 'r' and kind ~= 't') or not string.find(ver, '^%d+$') then return nil end
  return ver, kind
end
`

// putSessionScript is Save's and Delete's: it writes a value, a record or
// a tombstone, unless the key holds a higher version. KEYS[1] the entry;
// ARGV the version of the caller, the TTL (ms), the value. It returns 1
// when written, 0 when stale.
var putSessionScript = newScript(sessionHead + `
local ver = head(redis.call('GETRANGE', KEYS[1], 0, 21))
if ver and ver > ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
return 1
`)

// takeSessionScript returns {version, record} and leaves a tombstone of
// the next version, or {} when the key holds no record. KEYS[1] the
// entry; ARGV the tombstone's TTL (ms). The version is incremented as a
// decimal string: a record's is below math.MaxUint64, which Save refuses,
// so that its successor still fits in 20 digits and in a uint64.
var takeSessionScript = newScript(sessionHead + `
local v = redis.call('GET', KEYS[1])
local ver, kind = head(v)
if kind ~= 'r' then return {} end
local i = 20
while string.sub(ver, i, i) == '9' do i = i - 1 end
local succ = string.sub(ver, 1, i - 1) .. string.char(string.byte(ver, i) + 1) .. string.rep('0', 20 - i)
redis.call('SET', KEYS[1], succ .. ':t', 'PX', ARGV[1])
return {ver, string.sub(v, 23)}
`)

// touchSessionScript sets the TTL of a record, and leaves a tombstone or
// a missing key as it is. KEYS[1] the entry; ARGV the TTL (ms). It
// returns 1 when it set the TTL, 0 otherwise.
var touchSessionScript = newScript(sessionHead + `
local _, kind = head(redis.call('GETRANGE', KEYS[1], 0, 21))
if kind ~= 'r' then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

// Save implements adapter.SessionStore with a script that compares the
// versions, then SET PX. An error wraps ErrUnavailable when Redis could
// not be reached within Timeout; the record may then have been written or
// not.
func (s *Sessions) Save(ctx context.Context, id string, v uint64, record []byte, ttl time.Duration) error {
	if err := adapter.CheckSession(id, v, record, ttl); err != nil {
		return err
	}
	// The value is a copy: a command that outlives a timed-out Do must
	// not read a buffer the caller has reused.
	ver := version(v)
	value := ver + ":r" + string(record)
	return s.put(ctx, "save", id, ver, ttl, value)
}

// Take implements adapter.SessionStore with a script that GETs the
// record, SETs the tombstone PX and returns the record.
func (s *Sessions) Take(ctx context.Context, id string, ttl time.Duration) ([]byte, uint64, error) {
	if err := adapter.CheckSessionID(id); err != nil {
		return nil, 0, err
	}
	if err := adapter.CheckSessionTTL(ttl); err != nil {
		return nil, 0, err
	}
	res, err := s.run(ctx, "take", takeSessionScript, call{key: s.key(id), args: []string{millis(ttl)}})
	if err != nil {
		return nil, 0, err
	}
	reply, err := res.ToArray()
	if err != nil {
		return nil, 0, fmt.Errorf("redis: take session: %w", err)
	}
	if len(reply) == 0 {
		return nil, 0, adapter.ErrNoSession
	}
	if len(reply) != 2 {
		return nil, 0, fmt.Errorf("redis: take session: a reply of %d items", len(reply))
	}
	ver, err := reply[0].ToString()
	if err != nil {
		return nil, 0, fmt.Errorf("redis: take session: %w", err)
	}
	v, err := strconv.ParseUint(ver, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("redis: take session: version: %w", err)
	}
	record, err := reply[1].AsBytes()
	if err != nil {
		return nil, 0, fmt.Errorf("redis: take session: %w", err)
	}
	return record, v, nil
}

// Touch implements adapter.SessionStore with one script per id that
// PEXPIREs the id's record, and leaves a tombstone or a missing id as it
// is. It checks every id before it sends anything, and pipelines the
// scripts at most 256 per round trip, each round trip bounded by Timeout.
// An error leaves the TTLs of the ids of later round trips unchanged.
func (s *Sessions) Touch(ctx context.Context, ids []string, ttl time.Duration) error {
	if err := adapter.CheckSessionTTL(ttl); err != nil {
		return err
	}
	for _, id := range ids {
		if err := adapter.CheckSessionID(id); err != nil {
			return err
		}
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	ms := millis(ttl)
	for len(ids) > 0 {
		batch := ids[:min(len(ids), maxCalls)]
		ids = ids[len(batch):]
		calls := make([]call, len(batch))
		for i, id := range batch {
			calls[i] = call{key: s.key(id), args: []string{ms}}
		}
		rctx, cancel := s.st.withTimeout(ctx)
		err := firstErr(touchSessionScript.execMulti(rctx, s.st.client, calls))
		cancel()
		if err != nil {
			return s.failed(ctx, "touch", err)
		}
		s.st.ok()
	}
	return nil
}

// Delete implements adapter.SessionStore with a script that compares the
// versions, then SETs the tombstone PX.
func (s *Sessions) Delete(ctx context.Context, id string, v uint64, ttl time.Duration) error {
	if err := adapter.CheckSessionID(id); err != nil {
		return err
	}
	if err := adapter.CheckSessionVersion(v); err != nil {
		return err
	}
	if err := adapter.CheckSessionTTL(ttl); err != nil {
		return err
	}
	return s.put(ctx, "delete", id, version(v), ttl, version(v+1)+":t")
}

// Close closes the client unless it was given in SessionsOptions.Client;
// every method then fails with ErrClosed. The records stay in Redis until
// they expire. Close is idempotent.
func (s *Sessions) Close() error {
	if !s.closed.Swap(true) {
		s.st.close()
	}
	return nil
}

func (s *Sessions) key(id string) string { return s.st.key("session", id) }

// usable returns the error of a call that must not start.
func (s *Sessions) usable(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// put writes value, unless id holds a version above ver, with
// putSessionScript.
func (s *Sessions) put(ctx context.Context, op, id, ver string, ttl time.Duration, value string) error {
	res, err := s.run(ctx, op, putSessionScript, call{key: s.key(id), args: []string{ver, millis(ttl), value}})
	if err != nil {
		return err
	}
	written, err := res.AsInt64()
	switch {
	case err != nil:
		return fmt.Errorf("redis: %s session: %w", op, err)
	case written == 0:
		return adapter.ErrStaleSession
	}
	return nil
}

// run runs one script call within Timeout.
func (s *Sessions) run(ctx context.Context, op string, sc *script, cl call) (rueidis.RedisResult, error) {
	if err := s.usable(ctx); err != nil {
		return rueidis.RedisResult{}, err
	}
	rctx, cancel := s.st.withTimeout(ctx)
	defer cancel()
	res := sc.exec(rctx, s.st.client, cl)
	if err := res.Error(); err != nil {
		return res, s.failed(ctx, op, err)
	}
	s.st.ok()
	return res, nil
}

// failed returns the error of a failed command: the caller's own
// cancellation as is, anything else recorded as an outage.
func (s *Sessions) failed(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("redis: %s session: %w", op, s.st.fail(err))
}

// millis is ttl in whole milliseconds, rounded up so that a positive TTL
// never becomes 0, which Redis refuses.
func millis(ttl time.Duration) string {
	return strconv.FormatInt(int64((ttl+time.Millisecond-1)/time.Millisecond), 10)
}

// version is v as the values hold it: 20 digits, zero-padded, so that
// the scripts compare versions as strings.
func version(v uint64) string { return fmt.Sprintf("%020d", v) }
