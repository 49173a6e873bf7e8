package adapter

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// CheckSession checks the arguments of a SessionStore's Save against the
// contract's bounds: CheckSessionID, CheckSessionVersion, a record of at
// most MaxSessionRecord bytes, and CheckSessionTTL. Implementations call
// it, and the others for the other methods, before they change anything.
func CheckSession(id string, v uint64, record []byte, ttl time.Duration) error {
	if err := CheckSessionID(id); err != nil {
		return err
	}
	if err := CheckSessionVersion(v); err != nil {
		return err
	}
	if len(record) > MaxSessionRecord {
		return fmt.Errorf("adapter: session record of %d bytes, over %d: %w", len(record), MaxSessionRecord, ErrInvalidOptions)
	}
	return CheckSessionTTL(ttl)
}

// CheckSessionID refuses an empty id or one over MaxSessionID bytes. The
// error does not quote the id: it is the client's secret.
func CheckSessionID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("adapter: empty session id: %w", ErrInvalidOptions)
	case len(id) > MaxSessionID:
		return fmt.Errorf("adapter: session id of %d bytes, over %d: %w", len(id), MaxSessionID, ErrInvalidOptions)
	}
	return nil
}

// CheckSessionVersion refuses math.MaxUint64, the one version without a
// successor for the tombstone that follows it (Take's or Delete's).
func CheckSessionVersion(v uint64) error {
	if v == math.MaxUint64 {
		return fmt.Errorf("adapter: session version %d has no successor: %w", v, ErrInvalidOptions)
	}
	return nil
}

// CheckSessionTTL refuses a TTL that is not positive.
func CheckSessionTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("adapter: session TTL %v is not positive: %w", ttl, ErrInvalidOptions)
	}
	return nil
}
