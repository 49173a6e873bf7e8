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
	// Save writes the record of id at version v, replacing any, to live
	// for ttl — unless id holds a higher version (a record or the
	// tombstone of a Take or a Delete): then it returns ErrStaleSession
	// and changes nothing. Versions fence the writers of one session: a
	// connection that was replaced by a resume can no longer overwrite
	// the record of the connection that replaced it.
	Save(ctx context.Context, id string, v uint64, record []byte, ttl time.Duration) error
	// Take returns the record of id and its version, and leaves in its
	// place, atomically, a tombstone of version v+1 that lives for ttl: of
	// two calls for one id at most one gets the record, and a writer of
	// version v or lower can no longer save it. ErrNoSession when id holds
	// no record (never saved, taken, deleted, expired, or a tombstone).
	Take(ctx context.Context, id string, ttl time.Duration) ([]byte, uint64, error)
	// Touch sets the TTL of every record of ids that exists to ttl; the
	// ids without a record (or with a tombstone) are skipped.
	Touch(ctx context.Context, ids []string, ttl time.Duration) error
	// Delete replaces the record of id by a tombstone of version v+1 that
	// lives for ttl, unless id holds a version higher than v: then it
	// returns ErrStaleSession and changes nothing.
	Delete(ctx context.Context, id string, v uint64, ttl time.Duration) error
}

// Bounds of a SessionStore's ids and records.
const (
	MaxSessionID     = 128
	MaxSessionRecord = 64 << 10
)

var (
	// ErrNoSession is returned by SessionStore.Take when id has no record.
	ErrNoSession = errors.New("adapter: no such session")
	// ErrStaleSession is returned by SessionStore.Save and Delete for a
	// version lower than the one id holds.
	ErrStaleSession = errors.New("adapter: session record of a newer connection")
)
