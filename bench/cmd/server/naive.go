package main

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

var errNoFanout = errors.New("this contender does not broadcast")

// naive is the fan-out floor: what a first version written directly on
// coder/websocket looks like. JWT checked before the upgrade, the room is a
// map under a mutex, and a broadcast starts one goroutine per recipient that
// writes the payload. Echo requests are written back from the read loop.
type naive struct {
	mu   sync.RWMutex // guards room
	room map[*websocket.Conn]struct{}
}

func newNaive() *naive { return &naive{room: make(map[*websocket.Conn]struct{})} }

func (n *naive) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := benchauth.Bearer(r.Header.Get("Authorization"))
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if _, _, err := benchauth.Verify(tok); err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		n.mu.Lock()
		n.room[c] = struct{}{}
		n.mu.Unlock()
		defer func() {
			n.mu.Lock()
			delete(n.room, c)
			n.mu.Unlock()
		}()
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	})
}

func (n *naive) Broadcast(payload []byte) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	for c := range n.room {
		go c.Write(context.Background(), websocket.MessageText, payload)
	}
	return nil
}

func (n *naive) Conns() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.room)
}
