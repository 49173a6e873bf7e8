package room

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type member struct{ id int }

func newMembers(n int) []*member {
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = &member{id: i}
	}
	return ms
}

func TestIndex(t *testing.T) {
	a, b := &member{1}, &member{2}

	t.Run("first_join_reports_first", func(t *testing.T) {
		x := NewIndex[*member](0)
		if first, err := x.Join("user:1", a); !first || err != nil {
			t.Fatalf("Join = %v, %v; want true, nil", first, err)
		}
		if first, err := x.Join("user:1", b); first || err != nil {
			t.Fatalf("second member Join = %v, %v; want false, nil", first, err)
		}
	})
	t.Run("rejoin_is_a_no_op", func(t *testing.T) {
		x := NewIndex[*member](0)
		mustJoin(t, x, "user:1", a)
		if first, err := x.Join("user:1", a); first || err != nil {
			t.Fatalf("rejoin = %v, %v; want false, nil", first, err)
		}
		if n := x.Count("user:1"); n != 1 {
			t.Fatalf("Count after rejoin = %d, want 1", n)
		}
	})
	t.Run("invalid_name_is_refused_and_changes_nothing", func(t *testing.T) {
		x := NewIndex[*member](0)
		if _, err := x.Join("user:1 2", a); !errors.Is(err, ErrInvalidName) {
			t.Fatalf("Join(invalid) = %v, want ErrInvalidName", err)
		}
		if x.Len() != 0 || len(x.RoomsOf(a, nil)) != 0 {
			t.Fatal("an invalid join changed the index")
		}
	})
	t.Run("last_leave_reports_last", func(t *testing.T) {
		x := NewIndex[*member](0)
		mustJoin(t, x, "user:1", a)
		mustJoin(t, x, "user:1", b)
		if left, last := x.Leave("user:1", a); !left || last {
			t.Fatalf("Leave with a member left = %v, %v; want true, false", left, last)
		}
		if left, last := x.Leave("user:1", b); !left || !last {
			t.Fatalf("Leave of the last member = %v, %v; want true, true", left, last)
		}
		if x.Len() != 0 || x.Count("user:1") != 0 {
			t.Fatalf("empty room still indexed: Len=%d", x.Len())
		}
	})
	t.Run("leaving_a_room_not_joined_is_a_no_op", func(t *testing.T) {
		x := NewIndex[*member](0)
		mustJoin(t, x, "user:1", b)
		for _, r := range []string{"user:1", "tenant:x"} {
			if left, last := x.Leave(r, a); left || last {
				t.Fatalf("Leave of a non-member of %s = %v, %v; want false, false", r, left, last)
			}
		}
		if x.Count("user:1") != 1 {
			t.Fatal("Leave of a non-member removed someone")
		}
	})
	t.Run("leave_all_returns_emptied_rooms", func(t *testing.T) {
		x := NewIndex[*member](0)
		mustJoin(t, x, "user:1", a)
		mustJoin(t, x, "tenant:acme", a)
		mustJoin(t, x, "tenant:acme", b)
		got := x.LeaveAll(a)
		if !slices.Equal(got, []string{"user:1"}) {
			t.Fatalf("LeaveAll = %q, want [user:1]", got)
		}
		if x.Count("tenant:acme") != 1 || len(x.RoomsOf(a, nil)) != 0 {
			t.Fatal("LeaveAll left the index inconsistent")
		}
		if x.LeaveAll(a) != nil {
			t.Fatal("second LeaveAll returned rooms")
		}
	})
	t.Run("members_and_each_see_every_member_once", func(t *testing.T) {
		x := NewIndex[*member](0)
		ms := newMembers(50)
		for _, m := range ms {
			mustJoin(t, x, "global", m)
		}
		var seen []*member
		x.Each("global", func(m *member) { seen = append(seen, m) })
		snap := x.Members("global", nil)
		for _, got := range [][]*member{seen, snap} {
			slices.SortFunc(got, func(p, q *member) int { return p.id - q.id })
			if !slices.Equal(got, ms) {
				t.Fatalf("got %d members, want the 50 joined", len(got))
			}
		}
		if got := x.Members("nobody", nil); len(got) != 0 {
			t.Fatalf("Members of an unknown room = %v", got)
		}
	})
	t.Run("rooms_of_lists_joined_rooms", func(t *testing.T) {
		x := NewIndex[*member](0)
		mustJoin(t, x, "user:1", a)
		mustJoin(t, x, "global", a)
		got := x.RoomsOf(a, []string{"kept"})
		slices.Sort(got[1:])
		if !slices.Equal(got, []string{"kept", "global", "user:1"}) {
			t.Fatalf("RoomsOf = %q", got)
		}
	})
	t.Run("comparable_values_work_as_members", func(t *testing.T) {
		x := NewIndex[string](0)
		mustJoin(t, x, "global", "conn-1")
		if first, _ := x.Join("global", "conn-1"); first || x.Count("global") != 1 {
			t.Fatal("equal string handles were treated as different members")
		}
	})
}

func mustJoin[M comparable](t *testing.T, x *Index[M], room string, m M) {
	t.Helper()
	if _, err := x.Join(room, m); err != nil {
		t.Fatalf("Join(%q) = %v", room, err)
	}
}

func TestIndexRoomLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"explicit_limit_is_enforced", 3, 3},
		{"zero_means_default_100", 0, DefaultMaxRooms},
		{"negative_means_default_100", -1, DefaultMaxRooms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex[*member](tc.limit)
			m, other := &member{1}, &member{2}
			for i := range tc.want {
				mustJoin(t, x, fmt.Sprintf("r:%d", i), m)
			}
			_, err := x.Join("r:over", m)
			if !errors.Is(err, ErrRoomLimit) {
				t.Fatalf("join over the limit = %v, want ErrRoomLimit", err)
			}
			if x.Count("r:over") != 0 || len(x.RoomsOf(m, nil)) != tc.want {
				t.Fatal("a refused join changed the index")
			}
			if first, err := x.Join("r:0", m); first || err != nil {
				t.Fatalf("rejoin at the limit = %v, %v; want a no-op", first, err)
			}
			mustJoin(t, x, "r:over", other) // the limit is per member
			x.Leave("r:0", m)
			mustJoin(t, x, "r:over", m) // leaving frees a slot
		})
	}
}

// TestIndexLargeRoomDrains takes one room across the slice/map threshold of
// set and back, checking every member is found at each step.
func TestIndexLargeRoomDrains(t *testing.T) {
	x := NewIndex[*member](0)
	ms := newMembers(1000)
	for _, m := range ms {
		mustJoin(t, x, "global", m)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(len(ms))
	for step, i := range order {
		left, last := x.Leave("global", ms[i])
		if !left {
			t.Fatalf("step %d: a member did not leave", step)
		}
		if want := step == len(ms)-1; last != want {
			t.Fatalf("step %d: last = %v, want %v", step, last, want)
		}
		if n := x.Count("global"); n != len(ms)-step-1 {
			t.Fatalf("step %d: Count = %d", step, n)
		}
		if step%97 == 0 {
			checkIndex(t, x)
		}
	}
	checkEmpty(t, x)
}

// checkIndex verifies that the two tables mirror each other and that every
// set's position map agrees with its slice.
func checkIndex[M comparable](t *testing.T, x *Index[M]) {
	t.Helper()
	pairs := 0
	for i := range x.rooms {
		sh := &x.rooms[i]
		sh.mu.RLock()
		for room, s := range sh.rooms {
			checkSet(t, s)
			if s.len() == 0 {
				t.Errorf("room %q is empty but indexed", room)
			}
			for _, m := range s.items {
				if !slices.Contains(x.RoomsOf(m, nil), room) {
					t.Errorf("room %q lists a member that does not list it", room)
				}
			}
			pairs += s.len()
		}
		sh.mu.RUnlock()
	}
	for i := range x.members {
		ms := &x.members[i]
		ms.mu.Lock()
		for _, rs := range ms.rooms {
			checkSet(t, rs)
			pairs -= rs.len()
		}
		ms.mu.Unlock()
	}
	if pairs != 0 {
		t.Errorf("the tables disagree by %d memberships", pairs)
	}
}

func checkSet[K comparable](t *testing.T, s *set[K]) {
	t.Helper()
	if s.pos == nil {
		if s.len() > smallSet {
			t.Errorf("set of %d without a position map", s.len())
		}
		return
	}
	if len(s.pos) != s.len() {
		t.Errorf("position map has %d entries for %d items", len(s.pos), s.len())
	}
	for i, it := range s.items {
		if s.pos[it] != int32(i) {
			t.Errorf("item %d is mapped to %d", i, s.pos[it])
		}
	}
}

// checkEmpty verifies that an index whose members all left holds no entries
// and no map that grew past shardMapPeak, i.e. that the memory went back.
func checkEmpty[M comparable](t *testing.T, x *Index[M]) {
	t.Helper()
	if n := x.Len(); n != 0 {
		t.Errorf("Len = %d after everyone left", n)
	}
	for i := range x.rooms {
		if rs := &x.rooms[i]; len(rs.rooms) != 0 || rs.peak > shardMapPeak {
			t.Errorf("room shard %d holds %d rooms, peak %d", i, len(rs.rooms), rs.peak)
		}
		if ms := &x.members[i]; len(ms.rooms) != 0 || ms.peak > shardMapPeak {
			t.Errorf("member shard %d holds %d members, peak %d", i, len(ms.rooms), ms.peak)
		}
	}
}

// TestIndexReturnsMemory fills the index well past shardMapPeak per shard,
// empties it, and checks that the big maps were dropped.
func TestIndexReturnsMemory(t *testing.T) {
	x := NewIndex[*member](0)
	ms := newMembers(20 * numShards * shardMapPeak / 10)
	for i, m := range ms {
		mustJoin(t, x, fmt.Sprintf("user:%d", i), m)
		mustJoin(t, x, "global", m)
	}
	if x.Len() != len(ms)+1 {
		t.Fatalf("Len = %d, want %d", x.Len(), len(ms)+1)
	}
	dropped := 0
	for _, m := range ms {
		x.LeaveAll(m)
	}
	for i := range x.rooms {
		if x.rooms[i].rooms == nil {
			dropped++
		}
	}
	if dropped < numShards/2 {
		t.Errorf("only %d of %d room shard maps were dropped after a spike", dropped, numShards)
	}
	checkEmpty(t, x)
}
