// Package inflight lets middleware that counts requests in flight go on
// counting one whose handler returned while the connection lives on: the
// hub hands a WebSocket to a goroutine of its own after the upgrade, so that
// net/http's per-request goroutine and state are freed, and the connection
// keeps the middleware's slot until it ends.
//
// Middleware calls Track around the handler; a handler that keeps serving
// after it returns calls Detach before returning, and the function Detach
// returns when it is done. Ownership moves once, whoever comes first: every
// release runs exactly once.
package inflight

import (
	"context"
	"sync/atomic"
)

type key struct{}

// hold is one middleware's release; holds nest like the middleware.
type hold struct {
	release func()
	taken   atomic.Bool
	outer   *hold
}

// Track registers release in the returned context. done, to be deferred by
// the middleware, calls release unless the handler detached first.
func Track(ctx context.Context, release func()) (_ context.Context, done func()) {
	h := &hold{release: release}
	h.outer, _ = ctx.Value(key{}).(*hold)
	return context.WithValue(ctx, key{}, h), func() {
		if h.taken.CompareAndSwap(false, true) {
			h.release()
		}
	}
}

// Detach takes over every release registered in ctx that middleware has not
// yet run, and returns a function that runs them; calling it again does
// nothing. With nothing registered it returns a no-op.
func Detach(ctx context.Context) (release func()) {
	var taken []func()
	for h, _ := ctx.Value(key{}).(*hold); h != nil; h = h.outer {
		if h.taken.CompareAndSwap(false, true) {
			taken = append(taken, h.release)
		}
	}
	if len(taken) == 0 {
		return func() {}
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			for _, r := range taken {
				r()
			}
		}
	}
}
