package room

import (
	"fmt"
	"sync/atomic"
	"testing"
)

func indexWithRoom(b *testing.B, n int) (*Index[*member], string) {
	b.Helper()
	x := NewIndex[*member](0)
	for _, m := range newMembers(n) {
		if _, err := x.Join("conversation:big", m); err != nil {
			b.Fatal(err)
		}
	}
	return x, "conversation:big"
}

// BenchmarkIndexEach1000 is the broadcast hot path: visit every member of a
// 1,000-member room.
func BenchmarkIndexEach1000(b *testing.B) {
	x, room := indexWithRoom(b, 1000)
	n := 0
	for b.Loop() {
		x.Each(room, func(*member) { n++ })
	}
	if n != 1000*b.N {
		b.Fatalf("visited %d members", n)
	}
}

// BenchmarkIndexMembers1000 takes a snapshot of a 1,000-member room into a
// reused buffer.
func BenchmarkIndexMembers1000(b *testing.B) {
	x, room := indexWithRoom(b, 1000)
	buf := make([]*member, 0, 1000)
	for b.Loop() {
		buf = x.Members(room, buf[:0])
	}
}

// BenchmarkIndexJoinLeaveParallel is connection churn: each goroutine joins
// its members to a user room and a shared tenant room and leaves again.
func BenchmarkIndexJoinLeaveParallel(b *testing.B) {
	x := NewIndex[*member](0)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		m := &member{id: int(next.Add(1))}
		user := fmt.Sprintf("user:%d", m.id)
		for pb.Next() {
			if _, err := x.Join(user, m); err != nil {
				b.Error(err)
				return
			}
			if _, err := x.Join("tenant:acme", m); err != nil {
				b.Error(err)
				return
			}
			x.LeaveAll(m)
		}
	})
}
