// Package socketio serves unmodified socket.io-client v4 frontends
// (Socket.IO v5 over Engine.IO v4: long-polling, WebSocket and the upgrade
// between them) from wsgate hubs: the same handlers, rooms, room policy,
// limits and broadcasts as the hubs' native clients, each Socket.IO
// namespace served by the hub you choose.
//
//	srv, err := socketio.New(socketio.Options{
//		Namespaces: map[string]*hub.Hub{"/": chat, "/notifications": notifications},
//		Origins:    origins,  // the guard.Origins of the hubs' gateway
//		Throttle:   throttle, // optional: handshakes per client IP
//		Limits:     limits,   // optional: sessions per node
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	mux.Handle("/socket.io/", srv)
//	mux.Handle("GET /ws", gw) // the native endpoint, beside it
//	...
//	err = srv.Shutdown(ctx) // clients reconnect, to another node
//
// and in the browser:
//
//	const socket = io("https://chat.example.com", { auth: { token } });
//	const reply = await socket.emitWithAck("message:send", { conversationId, content });
//	socket.on("message:new", render);
//
// How Socket.IO maps onto a hub:
//
//   - CONNECT to a namespace is the hub's handshake: the hub verifies the
//     JWT of the auth payload ({token}), or, without one, the credential of
//     the session's handshake request its Tokens extractor reads (the
//     Authorization header, a cookie), then applies its Admit (per-user
//     limit), joins the automatic rooms and answers with the connection id
//     as the Socket.IO id. A refusal is CONNECT_ERROR
//     {"message":...,"data":{"code":...}} with the wsgate code
//     (UNAUTHORIZED, TOKEN_EXPIRED, UNAVAILABLE, CONNECTION_LIMIT_EXCEEDED),
//     after which socket.io-client does not retry on its own.
//   - An event goes to the handler registered with hub.Handle for its name,
//     its first argument decoded into the handler's input (Options.Mode has
//     the other mappings) with the hub's validation, sanitizing and rate
//     limits. The handler's result answers the client's ack callback; an
//     error answers it with [{"error":{"code":...,"message":...}}], or, for
//     an event without ack, is the event "error" {"code":...,"message":...}.
//   - The events "join" and "leave" (Options.JoinEvent, LeaveEvent), whose
//     argument is a room name, join and leave rooms under the hub's room
//     policy, answered through the ack callback.
//   - Broadcasts, ToUser, ToTenant, ToAll and Emit reach Socket.IO and
//     native clients alike, encoded once per namespace and once for the
//     native protocol, whatever the number of recipients.
//   - A token that expires ends the namespace with the "error" event
//     TOKEN_EXPIRED then a DISCONNECT, and so does a server-side
//     DisconnectUser: socket.io-client does not reconnect a namespace the
//     server disconnected. A shutdown (of a hub or of this Server), a slow
//     consumer, rate-limit abuse and internal errors close the Engine.IO
//     session instead, which the client answers by reconnecting.
//   - Binary attachments arrive in []byte fields of a handler's input;
//     Binary sends them (see NewBinary).
//   - A handler asks its client for an acknowledgement with EmitWithAck,
//     which waits for the client's ack(...) within the handler's
//     deadline; the client's other messages wait, in order, until it
//     returns.
//   - With Options.Recovery, Socket.IO's connection state recovery: a
//     client that reconnects within MaxDisconnectionDuration, to any node,
//     gets socket.recovered === true and every event it missed of its
//     rooms with history, or false and none (see Recovery).
//
// Every control applies to every HTTP request: the origin check to each
// polling request and upgrade as much as to the handshake (the reference
// server checks handshakes only; a browser's same-origin GET, which has
// no Origin header, is judged by its Host when its Sec-Fetch-Site says
// same-origin); the throttle and the per-node limit to
// the handshakes, the limit holding its slot for the session's life; the
// hub's MaxMessageBytes to each packet (the largest of them is Engine.IO's
// maxPayload); bounded send queues; and the security log, in which a
// connection is its Socket.IO id, never the Engine.IO session id, which is
// a bearer credential (144 random bits).
//
// Behind a load balancer, WebSocket sessions need nothing more: every room
// reaches every node through the hubs' broker. Long-polling needs each
// session's requests routed to the node that holds it: set
// Options.Cookie and route on it (docs/SOCKETIO.md shows an nginx and an
// HAProxy setup).
package socketio
