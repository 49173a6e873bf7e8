package room

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// edgeLog records, per room, the empty/non-empty transitions in the order the
// room shard's lock saw them, and what the callers were told.
type edgeLog struct {
	mu       sync.Mutex
	seq      map[string][]bool // true = first, false = last; appended under the room shard lock
	toldUp   map[string]int    // Join returned first
	toldDown map[string]int    // Leave returned last, or LeaveAll listed the room
}

func (l *edgeLog) observe(room string, first bool) {
	l.mu.Lock()
	l.seq[room] = append(l.seq[room], first)
	l.mu.Unlock()
}

func (l *edgeLog) told(room string, up bool) {
	l.mu.Lock()
	if up {
		l.toldUp[room]++
	} else {
		l.toldDown[room]++
	}
	l.mu.Unlock()
}

// TestIndexConcurrent runs joins, leaves, LeaveAll and readers from many
// goroutines on a few shared rooms and members, then checks that per room the
// transitions alternate first, last, first..., that each was reported to
// exactly one caller, that the room limit held, and that the index ends
// empty.
func TestIndexConcurrent(t *testing.T) {
	const (
		goroutines = 16
		opsEach    = 3000
		maxRooms   = 3
	)
	// Few members per room, so that rooms empty and refill often: the
	// first/last race only exists at those transitions.
	rooms := make([]string, 4)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("conversation:c%d", i)
	}
	members := newMembers(6)
	log := &edgeLog{seq: map[string][]bool{}, toldUp: map[string]int{}, toldDown: map[string]int{}}
	x := NewIndex[*member](maxRooms)
	x.observe = log.observe

	var overLimit atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var buf []*member
			for range opsEach {
				room := rooms[rng.IntN(len(rooms))]
				m := members[rng.IntN(len(members))]
				switch op := rng.IntN(20); {
				case op < 8:
					if first, err := x.Join(room, m); err == nil && first {
						log.told(room, true)
					}
				case op < 17:
					if _, last := x.Leave(room, m); last {
						log.told(room, false)
					}
				case op < 18:
					for _, r := range x.LeaveAll(m) {
						log.told(r, false)
					}
				default:
					buf = x.Members(room, buf[:0])
					x.Each(room, func(*member) {})
					if len(x.RoomsOf(m, nil)) > maxRooms {
						overLimit.Add(1)
					}
					_ = x.Count(room) + x.Len()
				}
			}
		})
	}
	wg.Wait()
	if n := overLimit.Load(); n > 0 {
		t.Errorf("a member was seen in more than %d rooms %d times", maxRooms, n)
	}
	checkIndex(t, x)
	for _, m := range members {
		for _, r := range x.LeaveAll(m) {
			log.told(r, false)
		}
	}
	checkEmpty(t, x)

	transitions := 0
	for _, room := range rooms {
		seq := log.seq[room]
		for i, first := range seq {
			if first != (i%2 == 0) {
				t.Fatalf("room %s: transition %d is first=%v; the sequence must alternate starting with first", room, i, first)
			}
		}
		if len(seq)%2 != 0 {
			t.Errorf("room %s ends non-empty after everyone left", room)
		}
		up, down := len(seq)/2, len(seq)/2
		if log.toldUp[room] != up || log.toldDown[room] != down {
			t.Errorf("room %s: %d firsts and %d lasts happened, callers were told %d and %d",
				room, up, down, log.toldUp[room], log.toldDown[room])
		}
		transitions += len(seq)
	}
	t.Logf("%d transitions over %d rooms", transitions, len(rooms))
	if transitions < 1000 {
		t.Errorf("only %d transitions: the test did not exercise the race", transitions)
	}
}
