package adapter

import (
	"context"
	"errors"
	"time"
)

// SessionStore keeps short-lived session records that any node can read,
// so that a client whose node shut down or crashed can resume its session
// on another: the Socket.IO layer's connection state recovery keeps one
// record per recoverable connection, under a random private id the client
// holds.
//
// A record is opaque bytes of at most MaxSessionRecord bytes under an id of
// 1 to MaxSessionID bytes. Every record has a TTL; an expired record is
// gone as if deleted. An id out of bounds, a record too large or a TTL not
// positive is refused with an error wrapping ErrInvalidOptions, before
// anything is changed. The id is the client's secret: implementations keep
// it out of their errors and logs. Implementations are safe for
// concurrent use and bound the memory they hold.
//
// adapter/memory and adapter/redis implement it; adapter/sessiontest
// checks an implementation against this contract.
type SessionStore interface {
	// Save writes the record of id, replacing any, to live for ttl.
	Save(ctx context.Context, id string, record []byte, ttl time.Duration) error
	// Take returns the record of id and deletes it, atomically: of two
	// calls for one id, at most one gets the record. ErrNoSession when
	// there is none (never saved, deleted, taken or expired).
	Take(ctx context.Context, id string) ([]byte, error)
	// Touch sets the TTL of every record of ids that exists to ttl; the
	// ids without a record are skipped.
	Touch(ctx context.Context, ids []string, ttl time.Duration) error
	// Delete removes the record of id, if any.
	Delete(ctx context.Context, id string) error
}

// Bounds of a SessionStore's ids and records.
const (
	MaxSessionID     = 128
	MaxSessionRecord = 64 << 10
)

// ErrNoSession is returned by SessionStore.Take when id has no record.
var ErrNoSession = errors.New("adapter: no such session")
