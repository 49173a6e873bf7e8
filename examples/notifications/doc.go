// Command notifications is the multi-tenant notification gateway of the
// second audit rebuilt on wsgate: clients listen on a WebSocket, a backend
// publishes through an authenticated HTTP API, and several instances share
// broadcasts through Redis.
//
// Run it on the embedded in-memory broker:
//
//	go run ./examples/notifications
//
// Without WSGATE_JWT_SECRET the server runs in demo mode: it makes up a
// random secret for this run (never a fixed one) and prints tokens for the
// seeded users: alice (tenant acme, ADMIN), bob (acme), carol (tenant
// globex) and root (SUPER_ADMIN). Listen as bob:
//
//	websocat -H 'Origin: http://127.0.0.1:8081' \
//		--protocol "wsgate.v1, wsgate.bearer.$BOB" ws://127.0.0.1:8081/ws
//
// and publish as alice, acme's administrator:
//
//	curl -X POST http://127.0.0.1:8081/api/notifications \
//		-H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \
//		-d '{"target":"user","id":"bob","title":"Invoice paid","body":"#1042"}'
//
// README.md shows two instances on one Redis. With -redis, broadcasts,
// the per-user connection limit and presence span every instance
// (adapter/redis Broker, Limiter and Presence); while Redis is down,
// publishing, readiness and new connections answer 503.
//
// Flags, each with an environment fallback:
//
//	-addr     listen address; env WSGATE_ADDR; default 127.0.0.1:8081
//	-origins  comma-separated page origins allowed to connect; env
//	          WSGATE_ORIGINS; default http://<addr> (https://<addr> with
//	          TLS). An -addr that listens on every interface (":8081")
//	          needs it.
//	-tls-cert PEM certificate (chain) file; env WSGATE_TLS_CERT. With
//	-tls-key  its PEM private key (env WSGATE_TLS_KEY), the server speaks
//	          HTTPS and WSS only (TLS 1.2 or later, HTTP/1.1); set both or
//	          neither. Default: plain HTTP, for a TLS-terminating proxy.
//	-redis    Redis URL (redis://[user:password@]host:port[/db], rediss://
//	          for TLS); env REDIS_URL; default: the in-memory broker
//
// Environment only:
//
//	WSGATE_JWT_SECRET      HS256 secret of at least 32 bytes; setting it
//	                       turns demo mode off. Instances that share a Redis
//	                       share it.
//	WSGATE_JWT_ISSUER      when set, tokens must carry this iss
//	WSGATE_JWT_AUDIENCE    when set, tokens must carry this aud
//	WSGATE_REDIS_HMAC_KEY  key authenticating messages between instances
//	                       (at least 16 bytes); default: derived from the JWT
//	                       secret
//
// `notifications token <user>` prints a token for a seeded user signed with
// WSGATE_JWT_SECRET, standing in for an identity provider.
//
// Endpoints:
//
//	GET  /ws                        the WebSocket (subprotocol wsgate.v1)
//	/socket.io/                     the same hub as the Socket.IO namespace
//	                                /notifications, for the audit's
//	                                socket.io-client frontends:
//	                                io(url + "/notifications", {auth: {token}})
//	POST /api/notifications         publish; Bearer token, JSON body
//	GET  /api/tenants/{id}/online   users connected in a tenant (its ADMIN, SUPER_ADMIN)
//	GET  /metrics                   Prometheus metrics, on a registry of its own
//	GET  /healthz                   200 while the process serves
//	GET  /readyz                    200 while the hub accepts connections and the broker is up
//
// Every connection joins user:{id} and tenant:{id} on connect, and global
// when its token carries the SUPER_ADMIN role; clients may join nothing
// else. The WebSocket and each Socket.IO session sit behind a per-IP
// handshake throttle (429), an origin allowlist (403; a missing Origin is
// refused too; every request of a Socket.IO session is checked) and
// connection limits (5 per user, 429; 10,000 per node, 503). Tokens are
// read from Authorization: Bearer or a wsgate.bearer.<jwt> subprotocol
// entry, or from a Socket.IO CONNECT's auth.token, never from a cookie or
// the URL. Socket.IO clients get the events below as events of the
// namespace, and the ack through their ack callback.
//
// POST /api/notifications takes {target, id, title, body}: target is
// "user", "tenant" or "global"; id names the user or tenant and is absent
// for global; title is required, at most 200 characters; body at most
// 2,000. HTML is removed from both and the rest escaped. The caller must
// be SUPER_ADMIN, or an ADMIN publishing to their own tenant or to a user
// of it (the example's directory of seeded users stands in for the user
// database); anyone else gets 403, and a plain user may publish nothing. The
// answer is 202 {"id": "<uuid>"}; the event notification:new reaches every
// connection of the audience on every instance, once. An Idempotency-Key
// header makes a retry within two minutes deliver nothing again (same id).
// The user and tenant rooms keep their last 100 notifications for two
// minutes, which a client that reconnects recovers. Errors are
// {"code", "message"} with 400, 401, 403, 413, 415, 429 or 503. The API
// reads its credential from the Authorization header only, so a
// cross-site request cannot ride on a browser's cookies (CSRF), and it
// sends no CORS headers.
//
// Client events:
//
//	notification:mark-read  {notificationId uuid}, at most 5/s (burst 10)
//	                        → ack {notificationId, readAt}, and
//	                        notification:read with the same data to the
//	                        user's other connections, on every instance
//
// SIGINT or SIGTERM shuts down gracefully: clients get "bye" and close code
// 1012 (Socket.IO sessions 1012 or Engine.IO's close packet) and
// reconnect, within a 20 s deadline. Logs are JSON on stderr and
// never contain tokens or notification text.
package main
