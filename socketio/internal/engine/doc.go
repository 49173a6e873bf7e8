// Package engine is an Engine.IO v4 server: the sessions, heartbeats and
// transports (HTTP long-polling, WebSocket, and the upgrade from one to
// the other) under Socket.IO, independent of the hub.
//
// A Server is an http.Handler. For each new session it calls
// Options.Open, which returns the Receiver that gets the session's
// message packets, one call at a time, and its end. The owner sends with
// Session.Send, in units of frames already encoded (a Socket.IO packet
// and its binary attachments travel as one unit, queued or refused as a
// whole), and closes with Session.Close.
//
//	srv, err := engine.New(engine.Options{
//		Open: func(s *engine.Session, r *http.Request) (engine.Receiver, error) {
//			return echo{s}, nil
//		},
//	})
//	// handle err
//	http.Handle("/engine.io/", srv)
//
// Every request passes through Options.Check first, with or without a
// session id, so that an origin allowlist, a throttle and limits apply to
// polling requests and upgrades as much as to handshakes.
//
// The session id is a bearer credential: whoever presents it reads and
// writes the session. It has 144 random bits, and it is never logged or
// exposed; Session.ID is a separate id for logs.
//
// Timers are time.AfterFunc callbacks and an idle polling session holds no
// goroutine; a held GET holds its net/http goroutine, and a WebSocket one
// reader goroutine. Writes to a WebSocket go through one internal/wire
// Writer per socket.
package engine
