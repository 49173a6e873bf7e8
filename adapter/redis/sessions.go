package redis

import (
	"context"
	"fmt"
	"log/slog"
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
// It needs Redis 6.2 or later (GETDEL).
//
// A record is the string "<prefix>session:{<id>}", whose Redis TTL is the
// record's: Redis expires it, so nothing of a client that never comes back
// stays behind, and the memory held is bounded by Redis' maxmemory. The id
// is the key's hash tag, so each record lives on one cluster slot. Take is
// one GETDEL, which Redis runs atomically: of two nodes taking one id, one
// gets the record. Redis keeps TTLs in whole milliseconds; a TTL is rounded
// up to the next one. Errors never quote an id, which is the client's
// secret. Safe for concurrent use.
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

// Save implements adapter.SessionStore with SET PX. An error wraps
// ErrUnavailable when Redis could not be reached within Timeout; the record
// may then have been written or not.
func (s *Sessions) Save(ctx context.Context, id string, record []byte, ttl time.Duration) error {
	if err := checkSession(id, record, ttl); err != nil {
		return err
	}
	c := s.st.client
	// string(record) copies: a command that outlives a timed-out Do must
	// not read a buffer the caller has reused.
	cmd := c.B().Set().Key(s.key(id)).Value(string(record)).PxMilliseconds(millis(ttl)).Build()
	_, err := s.do(ctx, "save", cmd)
	return err
}

// Take implements adapter.SessionStore with GETDEL.
func (s *Sessions) Take(ctx context.Context, id string) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	c := s.st.client
	res, err := s.do(ctx, "take", c.B().Getdel().Key(s.key(id)).Build())
	if err != nil {
		return nil, err
	}
	record, err := res.AsBytes()
	switch {
	case rueidis.IsRedisNil(err):
		return nil, adapter.ErrNoSession
	case err != nil:
		return nil, fmt.Errorf("redis: take session: %w", err)
	}
	return record, nil
}

// Touch implements adapter.SessionStore with one PEXPIRE per id, which
// does nothing to an id without a record. It checks every id before it
// sends anything, and pipelines the commands at most 256 per round trip,
// each round trip bounded by Timeout. An error leaves the TTLs of the ids
// of later round trips unchanged.
func (s *Sessions) Touch(ctx context.Context, ids []string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	c, ms := s.st.client, millis(ttl)
	for len(ids) > 0 {
		batch := ids[:min(len(ids), maxCalls)]
		ids = ids[len(batch):]
		cmds := make(rueidis.Commands, len(batch))
		for i, id := range batch {
			cmds[i] = c.B().Pexpire().Key(s.key(id)).Milliseconds(ms).Build()
		}
		rctx, cancel := s.st.withTimeout(ctx)
		err := firstErr(c.DoMulti(rctx, cmds...))
		cancel()
		if err != nil {
			return s.failed(ctx, "touch", err)
		}
		s.st.ok()
	}
	return nil
}

// Delete implements adapter.SessionStore with DEL.
func (s *Sessions) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := s.do(ctx, "delete", s.st.client.B().Del().Key(s.key(id)).Build())
	return err
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

// do runs one command within Timeout. A nil reply is a result, not an
// error: Take reads it as no record.
func (s *Sessions) do(ctx context.Context, op string, cmd rueidis.Completed) (rueidis.RedisResult, error) {
	if err := s.usable(ctx); err != nil {
		return rueidis.RedisResult{}, err
	}
	rctx, cancel := s.st.withTimeout(ctx)
	defer cancel()
	res := s.st.client.Do(rctx, cmd)
	if err := res.Error(); err != nil && !rueidis.IsRedisNil(err) {
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
func millis(ttl time.Duration) int64 {
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// checkSession checks the arguments of Save against the bounds of
// adapter.SessionStore.
func checkSession(id string, record []byte, ttl time.Duration) error {
	if err := checkID(id); err != nil {
		return err
	}
	if len(record) > adapter.MaxSessionRecord {
		return fmt.Errorf("redis: session record of %d bytes, over %d: %w",
			len(record), adapter.MaxSessionRecord, adapter.ErrInvalidOptions)
	}
	return checkTTL(ttl)
}

// checkID refuses an empty or overlong id. The error does not quote the
// id: it is the client's secret.
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("redis: empty session id: %w", adapter.ErrInvalidOptions)
	case len(id) > adapter.MaxSessionID:
		return fmt.Errorf("redis: session id of %d bytes, over %d: %w",
			len(id), adapter.MaxSessionID, adapter.ErrInvalidOptions)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redis: session TTL %v is not positive: %w", ttl, adapter.ErrInvalidOptions)
	}
	return nil
}
