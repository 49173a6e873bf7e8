package main

import (
	"net/http"

	"github.com/olahol/melody"

	"github.com/wsgate/wsgate/bench/internal/benchauth"
)

// melodyServer is melody used the ordinary way: the JWT is checked in the
// HTTP handler before HandleRequestWithKeys upgrades, the room is a session
// key, a broadcast is BroadcastFilter on that key, and an echo request is
// written back to its session.
type melodyServer struct{ m *melody.Melody }

func newMelody() *melodyServer {
	m := melody.New()
	m.HandleMessage(func(s *melody.Session, msg []byte) { _ = s.Write(msg) })
	return &melodyServer{m: m}
}

func (s *melodyServer) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := benchauth.Bearer(r.Header.Get("Authorization"))
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		sub, _, err := benchauth.Verify(tok)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = s.m.HandleRequestWithKeys(w, r, map[string]any{"user": sub, "room": Room})
	})
}

func (s *melodyServer) Broadcast(payload []byte) error {
	return s.m.BroadcastFilter(payload, func(q *melody.Session) bool {
		room, _ := q.Get("room")
		return room == Room
	})
}

func (s *melodyServer) Conns() int { return s.m.Len() }
