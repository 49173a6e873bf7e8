package guard

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/inflight"
	"github.com/wsgate/wsgate/protocol"
)

// Retry-After values of the connection limits. A slot frees only when some
// connection ends, which the server cannot predict, so these are hints that
// keep well-behaved clients from retrying in a tight loop.
const (
	userLimitRetryAfter = 10 * time.Second
	nodeFullRetryAfter  = 5 * time.Second
)

var (
	// ErrUserLimit is the sentinel of the refusal Admit returns when the user
	// already holds LimitsOptions.PerUser connections.
	ErrUserLimit = errors.New("guard: per-user connection limit reached")
	// ErrNodeFull is the sentinel of the refusal Limits.Middleware answers
	// with when LimitsOptions.PerNode requests are in flight.
	ErrNodeFull = errors.New("guard: node connection limit reached")

	errNoUser = errors.New("guard: Admit needs a non-empty user id")
)

// LimitsOptions configures NewLimits. The zero value is the safe default.
type LimitsOptions struct {
	// PerUser is how many connections one user may hold at once on this
	// node. Default 5.
	PerUser int
	// PerNode is how many requests may be in flight through the middleware
	// at once; for a WebSocket endpoint that is the number of connections.
	// Default 10,000.
	PerNode int
	// Logger receives one Warn line per refusal (events "node_full" and
	// "user_connection_limit"). Default: nothing is logged.
	Logger *slog.Logger
	// Observer counts refusals for metrics (hub.Observer satisfies it).
	// Default: none.
	Observer Observer
}

// Limits caps concurrent connections per user and per node. It counts on
// this node only. Safe for concurrent use.
type Limits struct {
	perUser  int
	perNode  int64
	log      *slog.Logger
	obs      Observer
	inFlight atomic.Int64 // requests inside Middleware's next, refused ones excluded

	mu    sync.Mutex     // guards users
	users map[string]int // user id → admitted connections; no zero entries
}

// NewLimits validates opts, fills in the defaults and returns the limits.
func NewLimits(opts LimitsOptions) (*Limits, error) {
	if opts.PerUser < 0 || opts.PerNode < 0 {
		return nil, errors.New("guard: LimitsOptions fields must not be negative")
	}
	if opts.PerUser == 0 {
		opts.PerUser = 5
	}
	if opts.PerNode == 0 {
		opts.PerNode = 10_000
	}
	return &Limits{
		perUser: opts.PerUser,
		perNode: int64(opts.PerNode),
		log:     loggerOrDiscard(opts.Logger),
		obs:     observerOrNop(opts.Observer),
		users:   make(map[string]int),
	}, nil
}

// Middleware counts requests in flight through next, and refuses with 503,
// code UNAVAILABLE and a Retry-After header when PerNode are already in
// flight. A hub's request counts until its connection ends, although
// hub.ServeHTTP returns after the upgrade: the hub takes the slot over and
// gives it back when the connection closes. Otherwise the slot is released
// by a deferred call, so a panicking or failing handler does not leak one.
// It also records the request attributes that Admit logs.
func (l *Limits) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoOf(r, "")
		if l.inFlight.Add(1) > l.perNode {
			l.inFlight.Add(-1)
			refuse(w, r, l.obs, l.log, eventNodeFull, info, &protocol.Refusal{
				Status:     http.StatusServiceUnavailable,
				Code:       protocol.CodeUnavailable,
				Message:    "server is at capacity",
				RetryAfter: nodeFullRetryAfter,
				Err:        ErrNodeFull,
			})
			return
		}
		ctx, done := inflight.Track(withReqInfo(r.Context(), info), func() { l.inFlight.Add(-1) })
		defer done()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Admit takes one of userID's connection slots. The hub calls it right after
// authentication, before the upgrade whenever the credential came with the
// request, so that a refusal is still an HTTP answer. Over the limit it
// returns a *protocol.Refusal with status 429, code CONNECTION_LIMIT_EXCEEDED
// and a Retry-After, wrapping ErrUserLimit. It fails if ctx is already done.
// It logs the refusal but does not count it: its caller (the hub) counts
// every admission refusal by its code.
//
// release gives the slot back; it is never nil (a no-op on error) and may be
// called any number of times, so it can be both deferred and called early.
func (l *Limits) Admit(ctx context.Context, userID string) (release func(), err error) {
	if userID == "" {
		return func() {}, errNoUser
	}
	if err := ctx.Err(); err != nil {
		return func() {}, err
	}
	l.mu.Lock()
	n := l.users[userID]
	if n >= l.perUser {
		l.mu.Unlock()
		// Not logged here: the hub, which asked, logs and counts every
		// refusal it answers, once.
		return func() {}, &protocol.Refusal{
			Status:     http.StatusTooManyRequests,
			Code:       protocol.CodeConnectionLimit,
			Message:    "too many connections for this user",
			RetryAfter: userLimitRetryAfter,
			Err:        ErrUserLimit,
		}
	}
	l.users[userID] = n + 1
	l.mu.Unlock()

	var once sync.Once
	return func() { once.Do(func() { l.release(userID) }) }, nil
}

func (l *Limits) release(userID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Deleting at zero keeps the map as large as the set of connected users,
	// not of every user ever seen.
	if n := l.users[userID] - 1; n > 0 {
		l.users[userID] = n
	} else {
		delete(l.users, userID)
	}
}

// InFlight returns how many requests are inside the middleware's next.
func (l *Limits) InFlight() int { return int(l.inFlight.Load()) }

// Users returns how many users hold at least one slot.
func (l *Limits) Users() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}
