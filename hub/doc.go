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
// Concurrency: each connection has one reader goroutine (the one ServeHTTP
// runs on) and a writer goroutine that exists only while frames are queued,
// so an idle connection costs one goroutine. Handlers run on their own
// goroutine per message so that the deadline can be enforced; they must
// respect ctx.
package hub
