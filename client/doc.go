// Package client is the Go client of the wsgate wire protocol (wsgate.v1,
// docs/PROTOCOL.md): a connection to a hub that authenticates, calls events
// with acks, receives events, joins rooms, refreshes its token in-band, and
// comes back by itself after a drop. Error codes and close codes are those
// of package protocol; the client imports nothing of the server.
//
// The smallest use:
//
//	c, err := client.Dial(ctx, client.Options{
//		URL:    "wss://chat.example.com/ws",
//		Origin: "https://chat.example.com",
//		Token:  func(ctx context.Context) (string, error) { return tokens.Current(ctx) },
//		OnEvent: func(ev client.Event) { ... },
//	})
//	...
//	defer c.Close()
//	err = c.Join(ctx, "conversation:42")
//	reply, err := client.Call[SendReply](ctx, c, "message:send", SendMessage{...})
//
// # Reconnecting
//
// After a drop the client waits, dials again with a token fresh from
// Options.Token, rejoins the rooms it joined with Join (the server's
// automatic rooms need none), and only then lets calls through again.
// Calls in flight when the connection dropped fail with ErrDisconnected;
// they are not replayed. Calls made while the client reconnects wait for
// the connection, within their ctx and the ack timeout.
//
// In the rooms whose history the server keeps (hub.Options.History),
// every event carries its position, and the client keeps the last one of
// each room (Position). After a reconnect it rejoins those rooms, and its
// automatic rooms, with that position: the server sends what was missed,
// all of it or none, and Options.OnRecovery says which, per room. Events
// of a room being recovered are held back meanwhile, so that the
// application gets each event once and in order, live or recovered. When
// the server finds a gap it cannot fill (its $recover event), the client
// recovers the room the same way.
//
// The wait is exponential backoff with full jitter (see Backoff): attempt n
// sleeps a random duration in [0, min(Max, Min·Multiplier^n)), so the clients of a
// node that died come back spread over the window rather than all at once.
// What happens after each cause:
//
//	cause                                  reconnect?
//	1006 network loss, heartbeat timeout   yes, backoff
//	1000 normal, 1001 going away           yes, backoff (the server never closes a healthy client with them)
//	1011 internal error, 1013 try later    yes, backoff
//	1012 service restart (shutdown)        yes, backoff restarted: within [0, Min)
//	1008 policy violation                  yes, after 10 s plus backoff
//	4003 token expired                     yes, backoff, with a fresh token from Token
//	4008 slow consumer (either side)       yes, backoff; events were lost: resynchronise
//	4029 connection limit                  yes, after 30 s plus backoff
//	4002 idle                              when needed: on the next Emit, Call, Join, Leave or Refresh
//	4001 before the welcome, HTTP 401      only if Token returns a different token; stop if that is refused too
//	4001 on an established connection      no: the server logged the user out (ErrLoggedOut, with the bye's reason)
//	1002, 1003, 1007, 1009 (client bugs)   no
//	HTTP 403 origin, 400 no subprotocol    no
//	HTTP 429, 503                          yes, after Retry-After plus backoff
//	Token error, dial error, other status  yes, backoff
//
// A client that stops reports Closed with the cause to OnState; every
// method then returns an error wrapping ErrClosed and the cause, as does
// Err. Options.MaxAttempts bounds consecutive failed attempts.
//
// # Concurrency
//
// Each live connection has one reader goroutine; a supervisor goroutine
// owns reconnecting. Writes are serialized. Events, errors without an id
// and state changes go, in order, to one callback goroutine that exists
// only while callbacks are queued, so a slow OnEvent never delays acks; the
// queue is bounded (Options.EventQueue) and its overflow is handled like a
// slow consumer on the server: drop the connection and reconnect.
package client
