package adapter

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Defaults for the zero values of StreamOptions and PublishOptions.
const (
	// DefaultStreamTTL is StreamOptions.TTL when it is 0 and Size is not.
	DefaultStreamTTL = 2 * time.Minute
	// MetaTTLFactor is how many times TTL the position outlives the entries
	// at least (the default and minimum of StreamOptions.MetaTTL).
	MetaTTLFactor = 10
	// DefaultIdempotencyTTL is PublishOptions.IdempotencyTTL when it is 0.
	DefaultIdempotencyTTL = 2 * time.Minute
	// MaxIdempotencyKeyLen is the longest IdempotencyKey Publish accepts,
	// in bytes.
	MaxIdempotencyKeyLen = 256
	// MaxEpochLen is the longest epoch a store gives out; a HistoryQuery
	// whose Since has a longer one matches no stream.
	MaxEpochLen = 64
)

// Position is a place in a topic's stream: offsets go 1, 2, 3… per topic;
// the epoch changes whenever continuity was lost (stream created anew, store
// restarted without persistence, key evicted or expired). Two positions
// with different epochs cannot be compared. The zero Position means "no
// position".
type Position struct {
	Offset uint64
	Epoch  string
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p.Offset == 0 && p.Epoch == "" }

// StreamOptions says that a publish goes into the topic's stream, and how
// the stream is bounded. The zero value means no stream.
type StreamOptions struct {
	// Size is how many entries the stream keeps, the oldest dropped first.
	// 0: no stream.
	Size int
	// TTL is how long entries can be recovered: older ones are not, and the
	// stream is deleted TTL after its last publish. Default
	// DefaultStreamTTL.
	TTL time.Duration
	// MetaTTL is how long the position (epoch and top offset) outlives the
	// last publish, so that a client that comes back after the entries
	// expired learns that it cannot recover rather than seeing a new
	// stream at the same offsets. Default and minimum MetaTTLFactor × TTL.
	MetaTTL time.Duration
}

// Enabled reports whether o asks for a stream.
func (o StreamOptions) Enabled() bool { return o.Size > 0 }

// WithDefaults returns o with its zero fields set to their defaults and
// MetaTTL raised to its minimum, or an error wrapping ErrInvalidOptions for
// a negative field. A disabled stream is returned unchanged.
func (o StreamOptions) WithDefaults() (StreamOptions, error) {
	switch {
	case o.Size < 0:
		return o, fmt.Errorf("%w: stream Size %d is negative", ErrInvalidOptions, o.Size)
	case o.TTL < 0:
		return o, fmt.Errorf("%w: stream TTL %s is negative", ErrInvalidOptions, o.TTL)
	case o.MetaTTL < 0:
		return o, fmt.Errorf("%w: stream MetaTTL %s is negative", ErrInvalidOptions, o.MetaTTL)
	case o.Size == 0:
		return o, nil
	}
	if o.TTL == 0 {
		o.TTL = DefaultStreamTTL
	}
	// A TTL below a millisecond would mean "expire now" to a store that
	// counts in milliseconds.
	o.TTL = max(o.TTL, time.Millisecond)
	o.MetaTTL = max(o.MetaTTL, MetaTTLFactor*o.TTL)
	return o, nil
}

// PublishOptions modify one Publish. The zero value publishes without a
// stream and without an idempotency key, as a plain broadcast.
type PublishOptions struct {
	// Stream, when enabled, appends the message to the topic's stream.
	Stream StreamOptions
	// IdempotencyKey, when set, makes a retry with the same key on the same
	// topic within IdempotencyTTL return ErrDuplicate without delivering
	// again — across nodes with a shared store. The key check is atomic
	// with the publish. At most MaxIdempotencyKeyLen bytes.
	IdempotencyKey string
	// IdempotencyTTL is how long a key is remembered. Default
	// DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
}

// WithDefaults returns o with its zero fields set to their defaults, or an
// error wrapping ErrInvalidOptions for a field out of range.
func (o PublishOptions) WithDefaults() (PublishOptions, error) {
	s, err := o.Stream.WithDefaults()
	if err != nil {
		return o, err
	}
	o.Stream = s
	switch {
	case len(o.IdempotencyKey) > MaxIdempotencyKeyLen:
		return o, fmt.Errorf("%w: idempotency key of %d bytes, at most %d", ErrInvalidOptions, len(o.IdempotencyKey), MaxIdempotencyKeyLen)
	case o.IdempotencyTTL < 0:
		return o, fmt.Errorf("%w: IdempotencyTTL %s is negative", ErrInvalidOptions, o.IdempotencyTTL)
	case o.IdempotencyTTL == 0:
		o.IdempotencyTTL = DefaultIdempotencyTTL
	}
	o.IdempotencyTTL = max(o.IdempotencyTTL, time.Millisecond)
	return o, nil
}

// HistoryQuery asks for the entries a client missed.
type HistoryQuery struct {
	// Since is the last position the client has. Zero: only the top is
	// wanted, and the result is never Complete.
	Since Position
	// Limit is the most entries the caller accepts: when more are missing
	// the result is not Complete. 0: no limit beyond what the stream keeps
	// (its Size).
	Limit int
	// Stream are the topic's stream options. When enabled, History creates
	// the topic's epoch if it has none yet, so that a client that received
	// nothing can still recover later from the top it was given, and keeps
	// the position alive (MetaTTL) while clients read it. When disabled, a
	// topic without a stream reports the zero top, and entries are not
	// checked against a TTL.
	Stream StreamOptions
}

// WithDefaults returns q with its stream's defaults applied, or an error
// wrapping ErrInvalidOptions for a field out of range. A Since whose epoch
// is longer than MaxEpochLen, which no store gives out, is replaced by the
// zero Position, so that a client's junk is not carried to the store.
func (q HistoryQuery) WithDefaults() (HistoryQuery, error) {
	if q.Limit < 0 {
		return q, fmt.Errorf("%w: history Limit %d is negative", ErrInvalidOptions, q.Limit)
	}
	if len(q.Since.Epoch) > MaxEpochLen {
		q.Since = Position{}
	}
	s, err := q.Stream.WithDefaults()
	if err != nil {
		return q, err
	}
	q.Stream = s
	return q, nil
}

// HistoryResult is the answer to a HistoryQuery: all or nothing.
type HistoryResult struct {
	// Top is the position of the newest publish (offset 0 before the first
	// one), or zero when the topic has no stream.
	Top Position
	// Entries are exactly the entries in (Since.Offset, Top.Offset], oldest
	// first, when Complete (none when Since is the top); nil otherwise.
	Entries []Entry
	// Complete is false when the entries cannot all be returned: the epoch
	// differs from Since's, some were trimmed (Size) or expired (TTL),
	// Since is above the top, more than Limit are missing, the stream was
	// never created, or Since is zero.
	Complete bool
}

// Entry is one message kept in a stream.
type Entry struct {
	Offset  uint64
	Payload []byte
}

// NewEpoch returns a random epoch: 16 hexadecimal digits, so that a new
// stream never repeats an epoch a client may still hold.
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
