package inflight

import (
	"context"
	"testing"
)

func TestTrackAndDetach(t *testing.T) {
	t.Run("released_by_the_middleware_when_not_detached", func(t *testing.T) {
		n := 0
		_, done := Track(context.Background(), func() { n++ })
		done()
		done()
		if n != 1 {
			t.Fatalf("released %d times, want 1", n)
		}
	})
	t.Run("detached_holds_are_released_by_the_handler_once", func(t *testing.T) {
		var outer, inner int
		ctx, doneOuter := Track(context.Background(), func() { outer++ })
		ctx, doneInner := Track(ctx, func() { inner++ })
		release := Detach(ctx)
		doneInner()
		doneOuter()
		if outer != 0 || inner != 0 {
			t.Fatalf("middleware released a detached hold: outer %d inner %d", outer, inner)
		}
		release()
		release()
		if outer != 1 || inner != 1 {
			t.Fatalf("after release: outer %d inner %d, want 1 and 1", outer, inner)
		}
	})
	t.Run("detach_after_the_middleware_returned_takes_nothing", func(t *testing.T) {
		n := 0
		ctx, done := Track(context.Background(), func() { n++ })
		done()
		Detach(ctx)()
		if n != 1 {
			t.Fatalf("released %d times, want 1", n)
		}
	})
	t.Run("nothing_tracked", func(t *testing.T) {
		Detach(context.Background())()
	})
}
