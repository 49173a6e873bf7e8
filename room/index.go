package room

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
)

// DefaultMaxRooms is the number of rooms a member may be in when NewIndex is
// given no limit.
const DefaultMaxRooms = 100

// numShards splits the tables so that a broadcast to one room shares a lock
// with about 1/64 of the other rooms, not all of them. A power of two, so a
// hash picks a shard with a mask.
const numShards = 64

// Index records which members (connections) are in which rooms. It is safe
// for concurrent use and built for the broadcast path: Each and Members take
// one read lock on the shard of the room they read and nothing else.
//
// Two tables are kept in step: rooms to members, sharded by a hash of the
// room name, and members to rooms, sharded by a hash of the member, which is
// what LeaveAll and the per-member room limit need. Rooms and members without
// entries are deleted, and a shard map that grew large is dropped once it
// empties, so memory returns when connections leave.
//
// Lock order: a member shard, then a room shard. Join, Leave and LeaveAll
// hold the member shard of m for the whole call, which serializes all changes
// for one member and keeps both tables consistent; they take room shards one
// at a time inside it. Nothing ever holds two shards of the same table, and
// readers (Each, Members, Count, RoomsOf, Len) hold one shard at a time.
//
// first and last: a room's member set goes from empty to non-empty, and back,
// only under its room shard's write lock, and that is where Join decides
// first and Leave decides last. So for each room the transitions reported to
// callers alternate first, last, first... in the order the lock defines. A
// caller that acts on them after the call returns (subscribing or
// unsubscribing a broker) can still be overtaken by another goroutine and
// must serialize those actions per room itself, for instance by comparing
// Count with what the broker was told under a per-room lock.
type Index[M comparable] struct {
	seed    maphash.Seed
	max     int
	rooms   [numShards]roomShard[M]
	members [numShards]memberShard[M]

	// observe, set only by tests, is called under the room shard's write
	// lock at every empty/non-empty transition: that lock is the only place
	// where the order of the transitions is defined, so it is the only place
	// a test can check that they alternate.
	observe func(room string, first bool)
}

// The padding puts each shard on its own 64-byte cache line (sync.RWMutex is
// 24 bytes, sync.Mutex 8, a map and an int 8 each), so goroutines working on
// neighbouring shards do not invalidate each other's lock word.
type roomShard[M comparable] struct {
	mu    sync.RWMutex
	rooms map[string]*set[M] // guarded by mu
	peak  int                // guarded by mu; most rooms held since rooms was made
	_     [64 - 40]byte
}

type memberShard[M comparable] struct {
	mu    sync.Mutex
	rooms map[M]*set[string] // guarded by mu
	peak  int                // guarded by mu; most members held since rooms was made
	_     [64 - 24]byte
}

// shardMapPeak is the size past which a shard's map is dropped once it
// empties. Go maps never shrink, so this is what returns the memory of a
// spike; below it, keeping the small map avoids reallocating it on every
// join into a quiet shard.
const shardMapPeak = 64

// NewIndex returns an empty Index that lets a member be in at most
// maxRoomsPerMember rooms. A value ≤ 0 means DefaultMaxRooms: the limit
// cannot be switched off, since it is what bounds a connection's memory.
func NewIndex[M comparable](maxRoomsPerMember int) *Index[M] {
	if maxRoomsPerMember <= 0 {
		maxRoomsPerMember = DefaultMaxRooms
	}
	return &Index[M]{seed: maphash.MakeSeed(), max: maxRoomsPerMember}
}

func (x *Index[M]) roomShard(room string) *roomShard[M] {
	return &x.rooms[maphash.String(x.seed, room)&(numShards-1)]
}

func (x *Index[M]) memberShard(m M) *memberShard[M] {
	return &x.members[maphash.Comparable(x.seed, m)&(numShards-1)]
}

// Join adds m to room. first reports that the room had no member before, so
// the caller should subscribe its broker to it. Joining a room m is already in
// is a no-op that returns (false, nil). Join returns an error wrapping
// ErrInvalidName for a malformed name and ErrRoomLimit when m is already in
// the maximum number of rooms; in both cases nothing changes.
//
// Join does not authorize: ask an Authorizer first when the request comes
// from a client. After LeaveAll(m), m must not be joined again.
func (x *Index[M]) Join(room string, m M) (first bool, err error) {
	if _, _, err := Parse(room); err != nil {
		return false, err
	}
	ms := x.memberShard(m)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	rs := ms.rooms[m]
	if rs != nil && rs.has(room) {
		return false, nil
	}
	if rs != nil && rs.len() >= x.max {
		return false, fmt.Errorf("%w: limit is %d", ErrRoomLimit, x.max)
	}
	if rs == nil {
		if ms.rooms == nil {
			ms.rooms = make(map[M]*set[string])
		}
		rs = &set[string]{}
		ms.rooms[m] = rs
		ms.peak = max(ms.peak, len(ms.rooms))
	}
	// The name may be a slice of a large inbound frame; a copy keeps the
	// index from pinning the frame for as long as the membership lasts.
	room = strings.Clone(room)
	rs.add(room)
	return x.addMember(room, m), nil
}

// addMember adds m to the room's member set and reports whether the set was
// empty. The caller holds m's member shard.
func (x *Index[M]) addMember(room string, m M) (first bool) {
	sh := x.roomShard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.rooms[room]
	if s == nil {
		if sh.rooms == nil {
			sh.rooms = make(map[string]*set[M])
		}
		s = &set[M]{}
		sh.rooms[room] = s
		sh.peak = max(sh.peak, len(sh.rooms))
		first = true
		if x.observe != nil {
			x.observe(room, true)
		}
	}
	s.add(m)
	return first
}

// removeMember removes m from the room's member set and reports whether the
// set is now empty, in which case the room is deleted. The caller holds m's
// member shard.
func (x *Index[M]) removeMember(room string, m M) (last bool) {
	sh := x.roomShard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.rooms[room]
	if s == nil || !s.remove(m) || s.len() > 0 {
		return false
	}
	delete(sh.rooms, room)
	if len(sh.rooms) == 0 && sh.peak > shardMapPeak {
		sh.rooms, sh.peak = nil, 0
	}
	if x.observe != nil {
		x.observe(room, false)
	}
	return true
}

// Leave removes m from room. left reports that m was a member (so presence
// and the like have something to undo); last, that the room is now empty, so
// the caller should unsubscribe its broker from it. Leaving a room m is not
// in returns false, false.
func (x *Index[M]) Leave(room string, m M) (left, last bool) {
	ms := x.memberShard(m)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	rs := ms.rooms[m]
	if rs == nil || !rs.remove(room) {
		return false, false
	}
	if rs.len() == 0 {
		ms.forget(m)
	}
	return true, x.removeMember(room, m)
}

// LeaveAll removes m from every room it is in, as on disconnect, and returns
// the rooms that became empty.
func (x *Index[M]) LeaveAll(m M) (emptied []string) {
	ms := x.memberShard(m)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	rs := ms.rooms[m]
	if rs == nil {
		return nil
	}
	ms.forget(m)
	for _, room := range rs.items {
		if x.removeMember(room, m) {
			emptied = append(emptied, room)
		}
	}
	return emptied
}

// forget deletes m's entry. The caller holds ms.mu.
func (ms *memberShard[M]) forget(m M) {
	delete(ms.rooms, m)
	if len(ms.rooms) == 0 && ms.peak > shardMapPeak {
		ms.rooms, ms.peak = nil, 0
	}
}

// Each calls fn for every member of room, in no particular order. fn runs
// under the room shard's read lock, which holds up joins and leaves of about
// 1/64 of the rooms: it must not block, and must not call back into the
// Index (a Join or Leave from fn can deadlock). To do more per member, take a
// snapshot with Members instead.
func (x *Index[M]) Each(room string, fn func(M)) {
	sh := x.roomShard(room)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if s := sh.rooms[room]; s != nil {
		for _, m := range s.items {
			fn(m)
		}
	}
}

// Members appends the members of room to dst and returns the extended
// slice. Passing a reused dst[:0] makes repeated snapshots allocation-free.
func (x *Index[M]) Members(room string, dst []M) []M {
	sh := x.roomShard(room)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if s := sh.rooms[room]; s != nil {
		dst = append(dst, s.items...)
	}
	return dst
}

// Count returns the number of members of room.
func (x *Index[M]) Count(room string) int {
	sh := x.roomShard(room)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if s := sh.rooms[room]; s != nil {
		return s.len()
	}
	return 0
}

// Has reports whether m is in room.
func (x *Index[M]) Has(room string, m M) bool {
	ms := x.memberShard(m)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	rs := ms.rooms[m]
	return rs != nil && rs.has(room)
}

// RoomsOf appends the rooms m is in to dst and returns the extended slice.
func (x *Index[M]) RoomsOf(m M, dst []string) []string {
	ms := x.memberShard(m)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if rs := ms.rooms[m]; rs != nil {
		dst = append(dst, rs.items...)
	}
	return dst
}

// Len returns the number of rooms that have at least one member. Shards are
// counted one after another, so under concurrent changes the result is
// approximate; it is meant for metrics.
func (x *Index[M]) Len() int {
	n := 0
	for i := range x.rooms {
		sh := &x.rooms[i]
		sh.mu.RLock()
		n += len(sh.rooms)
		sh.mu.RUnlock()
	}
	return n
}
