// Package hub is the WebSocket endpoint of wsgate: an http.Handler that
// authenticates before the upgrade, reads and validates typed messages,
// dispatches them to handlers, manages rooms and broadcasts through a broker.
//
// Every control is on by default: same-origin check, 401 without a valid
// credential, 64 KiB messages, UTF-8 text only, per-event rate limits with a
// close on abuse, default-deny rooms, a bounded send queue per connection,
// heartbeats, a handler deadline, recovered panics, generic errors to
// clients and a structured security log.
//
// The smallest use:
//
//	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
//	...
//	h, err := hub.New(hub.Options{Authenticator: authn})
//	...
//	hub.Handle(h, "message:send", func(ctx hub.Context, in SendMessage) (struct{}, error) {
//		return struct{}{}, ctx.Broadcast("conversation:"+in.ConversationID, "message:new", in)
//	})
//	http.Handle("/ws", h)
//
// The wire protocol (subprotocol wsgate.v1) is documented in docs/PROTOCOL.md.
//
// History: the room kinds named in Options.History keep their recent
// messages, in the broker (memory or Redis). Their events carry a position;
// a client that comes back joins the room with the position it had and gets
// every message it missed, in order and once, or is told it cannot
// (recovered false) and reloads. A live message lost on the way to a node
// is repaired from the history. Idempotent makes a retried publish happen
// once, Transient keeps an event out of the history, and EraseUser deletes
// a user's.
//
// Concurrency: ServeHTTP returns after the upgrade; each connection then has
// one reader goroutine of its own, and nothing else while it is idle. Frames
// for a connection go into its bounded send queue; a small pool of writers
// (GOMAXPROCS) takes connections with frames queued in turn and writes each
// one's whole queue without blocking, several frames per write(2), so a
// broadcast to many connections starts no goroutine per recipient. A
// connection whose socket is full (a slow reader) gets a goroutine of its
// own that blocks, bounded by Options.WriteTimeout, until its queue drains.
// Connections using compression or TLS always write from a goroutine of their
// own. Handlers run on their own goroutine per message so that the deadline
// can be enforced; they must respect ctx.
package hub
