// Command embedding is the worked example of docs/EMBEDDING.md: an
// existing REST service (chi, with its own request-id, access-log and
// recovery middleware) that embeds wsgate for its live updates.
//
//   - ES256 tokens from an identity provider's JWKS, verified by one
//     auth.JWT for the REST API and the WebSocket alike;
//   - gateway.New: origin allowlist, handshake throttle, per-user and
//     per-node limits, the security log and Prometheus on the service's own
//     registry, said once;
//   - a typed, validated, sanitized "comment" handler;
//   - project:{id} rooms only the project's members may join (a room.Rule);
//   - pushes from REST endpoints: JoinUser and ToUser when a member is
//     added, LeaveUser when one is removed, Broadcast for an announcement;
//   - graceful shutdown on SIGTERM;
//   - with EMBED_REDIS_ADDR, several nodes as one: the Redis broker,
//     presence, per-user limit and handshake throttle.
//
// Its tests run it over loopback with a JWKS served by an httptest server,
// connect with the Go client package, and run two nodes on a real
// redis-server.
//
// Environment:
//
//	EMBED_ADDR            listen address; default 127.0.0.1:8090
//	EMBED_ORIGINS         comma-separated frontend origins (required)
//	EMBED_JWKS_URL        the identity provider's JWKS (required)
//	EMBED_ISSUER          when set, tokens must carry this iss
//	EMBED_AUDIENCE        when set, tokens must carry this aud
//	EMBED_REDIS_ADDR      host:port of a Redis shared by every node
//	EMBED_REDIS_HMAC_KEY  at least 16 bytes, the same on every node
//
// Endpoints:
//
//	GET    /ws                                 the WebSocket (wsgate.v1)
//	POST   /api/projects/{id}/members          {"userId": ...}, members only
//	DELETE /api/projects/{id}/members/{user}   members only
//	POST   /api/projects/{id}/announcements    {"text": ...}, members only
//	GET    /healthz, /readyz, /metrics
package main
