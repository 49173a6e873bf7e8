package main

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/coder/websocket"
)

// bare is the memory floor: coder/websocket accepts the connection and the
// handler blocks in Read. No authentication, no room, nothing to send.
type bare struct{ n atomic.Int64 }

func newBare() *bare { return &bare{} }

func (b *bare) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		b.n.Add(1)
		defer b.n.Add(-1)
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
}

func (b *bare) Broadcast([]byte) error { return errNoFanout }

func (b *bare) Conns() int { return int(b.n.Load()) }

// bareDetached is bare with one difference: the handler returns after the
// upgrade and a goroutine of its own reads, so net/http's per-request state
// (the *http.Request with its headers, the response, the server's conn) is
// garbage instead of living as long as the WebSocket. coder/websocket
// supports using the Conn after the handler returns.
type bareDetached struct{ bare }

func newBareDetached() *bareDetached { return &bareDetached{} }

func (b *bareDetached) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		b.n.Add(1)
		go func() {
			defer b.n.Add(-1)
			defer c.CloseNow()
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	})
}
