package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/room"
)

func TestRejoin(t *testing.T) {
	t.Run("rooms_beyond_the_join_burst_are_rejoined_after_a_pause", func(t *testing.T) {
		slowJoins := func(o *hub.Options) { o.EventRate = hub.Limit{Rate: 5, Burst: 5} }
		s := startServer(t, newHub(t, slowJoins))
		rec := newRecorder()
		opts := s.options(t, "alice")
		opts.Backoff = fastBackoff
		rec.attach(&opts)
		c := dial(t, opts)
		const rooms = 8
		for i := range rooms {
			joinPaced(t, c, fmt.Sprint("chat:", i))
		}
		next := newHub(t, slowJoins)
		s.kill()
		s.restart(next)
		if st := rec.waitPhase(t, client.Connected, 2); st.Err != nil {
			t.Fatalf("Connected = %+v, want every room rejoined", st)
		}
		for i := range rooms {
			if err := next.Broadcast(context.Background(), fmt.Sprint("chat:", i), "news", Text{fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		rec.waitFor(t, "news from every room", func() bool {
			n := 0
			for _, ev := range rec.events {
				if ev.Name == "news" {
					n++
				}
			}
			return n == rooms
		})
	})

	t.Run("room_the_server_now_refuses_is_forgotten_and_reported", func(t *testing.T) {
		s := startServer(t, newHub(t, nil))
		rec := newRecorder()
		opts := s.options(t, "alice")
		opts.Backoff = fastBackoff
		rec.attach(&opts)
		c := dial(t, opts)
		if err := c.Join(context.Background(), "chat:1"); err != nil {
			t.Fatal(err)
		}
		// Nodes whose policy no longer allows chat:*.
		strict := func() *hub.Hub {
			return newHub(t, func(o *hub.Options) {
				p, err := room.NewPolicy(room.PolicyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				o.Rooms = p
			})
		}
		s.setHandler(strict())
		s.dropConns()
		st := rec.waitPhase(t, client.Connected, 2)
		var se *client.ServerError
		if !errors.As(st.Err, &se) || se.Code != protocol.CodeForbidden {
			t.Fatalf("Connected = %+v, want the FORBIDDEN rejoin reported", st)
		}
		// Forgotten: the next reconnect does not ask again (or it would be
		// refused again).
		s.setHandler(strict())
		s.dropConns()
		if st := rec.waitPhase(t, client.Connected, 3); st.Err != nil {
			t.Fatalf("third Connected = %+v, want no rejoin attempted", st)
		}
	})
}

// joinPaced joins name, waiting out the hub's join rate limit.
func joinPaced(t *testing.T, c *client.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Join(context.Background(), name)
		var se *client.ServerError
		switch {
		case err == nil:
			return
		case errors.As(err, &se) && se.Code == protocol.CodeRateLimited && time.Now().Before(deadline):
			time.Sleep(250 * time.Millisecond)
		default:
			t.Fatalf("join %s: %v", name, err)
		}
	}
}
