package room

// smallSet is the size up to which a set is a bare slice searched linearly.
// Most sets are tiny: a user room holds that user's few connections and a
// connection is in a handful of rooms, and for those a slice costs less
// memory than a map and is as fast to search.
const smallSet = 16

// set is an unordered set that iterates over a dense slice, which is what a
// broadcast to a large room wants, while an index map keeps add and remove
// O(1) once the set outgrows smallSet.
//
// A set has no lock of its own: the Index shard that owns it guards it.
type set[K comparable] struct {
	items []K
	pos   map[K]int32 // position of each item in items; nil while len(items) <= smallSet
}

func (s *set[K]) len() int { return len(s.items) }

func (s *set[K]) index(k K) int {
	if s.pos != nil {
		if i, ok := s.pos[k]; ok {
			return int(i)
		}
		return -1
	}
	for i, it := range s.items {
		if it == k {
			return i
		}
	}
	return -1
}

func (s *set[K]) has(k K) bool { return s.index(k) >= 0 }

// add inserts k and reports whether it was absent.
func (s *set[K]) add(k K) bool {
	if s.index(k) >= 0 {
		return false
	}
	s.items = append(s.items, k)
	switch {
	case s.pos != nil:
		s.pos[k] = int32(len(s.items) - 1)
	case len(s.items) > smallSet:
		s.pos = make(map[K]int32, 2*len(s.items))
		for i, it := range s.items {
			s.pos[it] = int32(i)
		}
	}
	return true
}

// remove deletes k and reports whether it was present. The last item moves
// into the hole, so removal is O(1) and items stays dense.
func (s *set[K]) remove(k K) bool {
	i := s.index(k)
	if i < 0 {
		return false
	}
	last := len(s.items) - 1
	if i != last {
		s.items[i] = s.items[last]
		if s.pos != nil {
			s.pos[s.items[i]] = int32(i)
		}
	}
	var zero K
	s.items[last] = zero // drop the reference so a removed member can be collected
	s.items = s.items[:last]
	if s.pos != nil {
		delete(s.pos, k)
		// Go maps never shrink; rebuilding from scratch below half the
		// threshold returns the memory of a room that was large once, and
		// the gap between the thresholds stops a set near the limit from
		// rebuilding on every join and leave.
		if len(s.items) <= smallSet/2 {
			s.pos = nil
		}
	}
	if cap(s.items) > 4*smallSet && len(s.items) < cap(s.items)/4 {
		// A room that drained from thousands of members to a few keeps
		// neither the big array nor the big map: both are rebuilt at the
		// current size.
		s.items = append(make([]K, 0, 2*len(s.items)), s.items...)
		if s.pos != nil {
			s.pos = make(map[K]int32, 2*len(s.items))
			for j, it := range s.items {
				s.pos[it] = int32(j)
			}
		}
	}
	return true
}
