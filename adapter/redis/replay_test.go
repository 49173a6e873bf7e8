package redis

import (
	"testing"
	"time"
)

// fakeClock is a settable clock for the replay guard.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestReplayGuard(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	newGuard := func() (*replayGuard, *fakeClock) {
		clock := &fakeClock{now: start}
		g := newReplayGuard(time.Minute)
		g.now = clock.Now
		return g, clock
	}
	at := func(c *fakeClock, node byte, seq uint64) header {
		return header{node: [8]byte{node}, seq: seq, unix: c.now.UnixMilli()}
	}
	expect := func(t *testing.T, g *replayGuard, h header, want verdict) {
		t.Helper()
		if got := g.check(h); got != want {
			t.Fatalf("check(node %d, seq %d) = %d, want %d", h.node[0], h.seq, got, want)
		}
	}

	t.Run("each_sequence_number_is_accepted_once_in_any_order", func(t *testing.T) {
		g, c := newGuard()
		for _, seq := range []uint64{5, 3, 4, 1, 2, 9, 6} {
			expect(t, g, at(c, 1, seq), fresh)
		}
		for _, seq := range []uint64{5, 3, 4, 1, 2, 9, 6} {
			expect(t, g, at(c, 1, seq), replayed)
		}
		expect(t, g, at(c, 1, 7), fresh) // a gap left open is still fresh
	})
	t.Run("nodes_are_told_apart", func(t *testing.T) {
		g, c := newGuard()
		expect(t, g, at(c, 1, 1), fresh)
		expect(t, g, at(c, 2, 1), fresh)
		expect(t, g, at(c, 2, 1), replayed)
	})
	t.Run("sequence_zero_is_never_accepted", func(t *testing.T) {
		g, c := newGuard()
		expect(t, g, at(c, 1, 0), replayed)
	})
	t.Run("late_arrival_within_the_bitmap_is_accepted", func(t *testing.T) {
		g, c := newGuard()
		expect(t, g, at(c, 1, replayBits+10), fresh)
		expect(t, g, at(c, 1, 11), fresh) // exactly replayBits-1 below the high mark
		expect(t, g, at(c, 1, 11), replayed)
	})
	t.Run("arrival_older_than_the_bitmap_is_refused", func(t *testing.T) {
		g, c := newGuard()
		expect(t, g, at(c, 1, replayBits+10), fresh)
		expect(t, g, at(c, 1, 10), replayed)
	})
	t.Run("a_jump_forgets_what_fell_out_of_the_bitmap_only", func(t *testing.T) {
		g, c := newGuard()
		for seq := uint64(1); seq <= 200; seq++ {
			expect(t, g, at(c, 1, seq), fresh)
		}
		// 200+replayBits-100: 1..99 fall out; 100..200 must still be known.
		expect(t, g, at(c, 1, replayBits+100), fresh)
		for _, seq := range []uint64{100, 101, 163, 164, 200} {
			expect(t, g, at(c, 1, seq), replayed)
		}
		for _, seq := range []uint64{201, 202, 1000, replayBits + 99} {
			expect(t, g, at(c, 1, seq), fresh)
		}
	})
	t.Run("a_jump_beyond_the_bitmap_clears_it", func(t *testing.T) {
		g, c := newGuard()
		expect(t, g, at(c, 1, 1), fresh)
		expect(t, g, at(c, 1, 1+replayBits), fresh) // same bit as 1
		expect(t, g, at(c, 1, 2+replayBits), fresh)
		expect(t, g, at(c, 1, 1+replayBits), replayed)
	})
	t.Run("time_outside_the_window_is_stale_either_way", func(t *testing.T) {
		g, c := newGuard()
		h := at(c, 1, 1)
		h.unix = c.now.Add(-time.Minute - time.Millisecond).UnixMilli()
		expect(t, g, h, stale)
		h.unix = c.now.Add(time.Minute + time.Millisecond).UnixMilli()
		expect(t, g, h, stale)
		h.unix = c.now.Add(-time.Minute).UnixMilli()
		expect(t, g, h, fresh)
	})
	t.Run("idle_nodes_are_forgotten_within_three_windows_and_their_replays_are_stale", func(t *testing.T) {
		g, c := newGuard()
		old := at(c, 1, 1)
		for node := byte(1); node <= 100; node++ {
			expect(t, g, at(c, node, 1), fresh)
		}
		c.now = c.now.Add(90 * time.Second)
		expect(t, g, at(c, 200, 1), fresh)
		if n := g.tracked(); n != 101 {
			t.Fatalf("%d nodes tracked after 1.5 windows, want 101", n)
		}
		// Idle nodes are swept once per window, so they go between two
		// and three windows after their last message.
		c.now = c.now.Add(91 * time.Second)
		expect(t, g, at(c, 201, 1), fresh)
		if n := g.tracked(); n != 2 {
			t.Fatalf("%d nodes tracked after three idle windows, want 2", n)
		}
		expect(t, g, old, stale) // node 1 is forgotten; its old message is not fresh
	})
}

func BenchmarkReplayGuardSparse(b *testing.B) {
	g := newReplayGuard(time.Minute)
	h := header{node: [8]byte{1}, unix: time.Now().UnixMilli()}
	b.ReportAllocs()
	for b.Loop() {
		h.seq += 97 // a receiver sees a few of a busy node's messages
		if g.check(h) != fresh {
			b.Fatal("refused")
		}
	}
}
