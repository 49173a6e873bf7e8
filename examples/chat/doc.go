// Command chat is the messaging gateway of the first audit rebuilt on
// wsgate: a reference server that shows every control of the library
// switched on, and a small page to try it with.
//
// Run it on the embedded in-memory broker:
//
//	go run ./examples/chat
//
// and open http://127.0.0.1:8080/ (or http://localhost:8080/: both are
// allowed origins) in two browser windows, one as alice and one as bob. Without WSGATE_JWT_SECRET the server runs in demo mode: it
// makes up a random secret for this run (never a fixed one), enables
// POST /demo/login, which sets the wsgate_token cookie for a seeded user,
// and prints ready tokens for alice, bob and carol on stdout:
//
//	websocat -H 'Origin: http://127.0.0.1:8080' \
//		--protocol 'wsgate.v1, wsgate.bearer.<token>' ws://127.0.0.1:8080/ws
//
// Flags, each with an environment fallback:
//
//	-addr     listen address; env WSGATE_ADDR; default 127.0.0.1:8080
//	-origins  comma-separated page origins allowed to connect; env
//	          WSGATE_ORIGINS; default http://<addr> (https://<addr> with
//	          TLS), and on a loopback address its localhost (or 127.0.0.1)
//	          twin. An -addr that listens on every interface (":8080")
//	          needs it.
//	-tls-cert PEM certificate (chain) file; env WSGATE_TLS_CERT. With
//	-tls-key  its PEM private key (env WSGATE_TLS_KEY), the server speaks
//	          HTTPS and WSS only (TLS 1.2 or later, HTTP/1.1); set both or
//	          neither. Default: plain HTTP, for a TLS-terminating proxy.
//	-socketio-client
//	          socket.io-client's ES module bundle
//	          (node_modules/socket.io-client/dist/socket.io.esm.min.js of
//	          the npm package); env WSGATE_SOCKETIO_CLIENT. When set, the
//	          page's Socket.IO variant is served on /socketio. Default: none
//	          (the /socket.io/ endpoint is served anyway).
//
// Environment only:
//
//	WSGATE_JWT_SECRET    HS256 secret of at least 32 bytes; setting it turns
//	                     demo mode (and /demo/login) off
//	WSGATE_JWT_ISSUER    when set, tokens must carry this iss
//	WSGATE_JWT_AUDIENCE  when set, tokens must carry this aud
//
// Endpoints:
//
//	GET  /ws          the WebSocket (subprotocol wsgate.v1, docs/PROTOCOL.md)
//	/socket.io/       the same hub for unmodified socket.io-client v4
//	                  frontends (long-polling and WebSocket, package
//	                  socketio): io(url, {auth: {token}}), the same events
//	                  answered through the ack callback, and the events
//	                  "join"/"leave" with a room name for the page's join
//	GET  /            the demo page; /static/app.js is its script, on the
//	                  browser client module /static/wsgate.js (package web)
//	GET  /socketio    with -socketio-client: the same page over
//	                  socket.io-client (/static/sio-client.js on
//	                  /static/socket.io.esm.min.js), through /socket.io/;
//	                  for instance, after npm ci in e2e/:
//	                  go run ./examples/chat -socketio-client \
//	                    e2e/node_modules/socket.io-client/dist/socket.io.esm.min.js
//	POST /demo/login  demo mode only: form field user=alice|bob|carol
//	GET  /healthz     always 200 while the process serves
//	GET  /readyz      200 while the hub accepts connections, else 503
//	GET  /metrics     Prometheus metrics (its own registry)
//
// The WebSocket, and every Socket.IO session, sits behind, in order, a
// per-IP handshake throttle (429),
// an origin allowlist (403; missing Origin refused too, so non-browser
// clients send one) and per-node and per-user connection limits (503, 429).
// (Socket.IO checks the origin on every request of a session, not only
// the first.) A token is read from Authorization: Bearer, from a
// wsgate.bearer.<jwt> subprotocol entry, or from the wsgate_token cookie;
// the cookie is safe only because of the origin allowlist. A Socket.IO
// client sends it in its CONNECT's auth.token, or relies on the header or
// the cookie of its session's first request.
//
// Events, with their schemas enforced before any handler runs:
//
//	message:send  {conversationId uuid, content ≤ 10,000 chars, HTML removed}
//	              → message:new {id, conversationId, senderId, content, sentAt}
//	              to every member of conversation:{id}, sender's tabs included;
//	              the ack carries {id, sentAt}
//	message:read  {conversationId, messageId} → message:read to the others
//	typing:start, typing:stop {conversationId} → typing {userId,
//	              conversationId, typing} to the others, at most 2/s
//
// Only participants may join conversation:{id} or send events about it
// (FORBIDDEN otherwise); every other room is denied by the default policy
// except the user's own. Two conversations are seeded: alice & bob
// (6f1c2a7e-3b4d-4c5e-8f90-a1b2c3d4e5f6) and bob & carol
// (0d9e8f7a-6b5c-4d3e-9f2a-1b0c9d8e7f6a), which alice's join is refused.
//
// SIGINT or SIGTERM shuts down gracefully: clients get "bye" and close code
// 1012 (Socket.IO sessions 1012 or Engine.IO's close packet) and
// reconnect, within a 20 s deadline. (go run passes Ctrl-C on but
// not a SIGTERM sent to its own pid; signal the built binary instead.) Logs
// are JSON on stderr and never contain tokens or message content.
package main
