// Package redis is the adapter.Broker for running several wsgate nodes
// behind a load balancer: broadcasts travel between nodes over Redis
// pub/sub, through github.com/redis/rueidis. Alongside it, a Limiter,
// a Presence and a Throttle make the per-user connection limit, room
// presence and the handshake throttle span every node.
//
// The smallest use is one Redis address, handed to the hub:
//
//	broker, err := redis.New(redis.Options{Addrs: []string{"10.0.0.5:6379"}})
//	if err != nil {
//		return err
//	}
//	h, err := hub.New(hub.Options{Broker: broker, ...})
//
// Several addresses, or Options.Cluster, select Redis Cluster with sharded
// pub/sub (SPUBLISH, SSUBSCRIBE), so that a message only crosses the shard
// that owns its channel.
//
// # What it costs
//
// A broadcast is one PUBLISH, whatever the number of recipients or nodes.
// A node subscribes only to the topics the hub asks for — the rooms with
// local members — and unsubscribes when the last member leaves. Each node
// holds one pub/sub connection per Redis (per master in a cluster) plus
// rueidis' pipelined command connections. Channels are Options.Prefix
// followed by the topic, so applications with different prefixes can share
// one Redis.
//
// # Guarantees
//
// Delivery is at most once. A message published while a node's pub/sub
// connection is down never reaches that node; nothing is replayed. Messages
// of one topic reach the handler in the order Redis sent them. Received
// messages wait in a bounded queue (Options.DeliveryBuffer) for a single
// delivery goroutine, so a slow handler costs dropped messages, counted in
// Stats.Dropped, never a stalled connection.
//
// With Options.HMACKey set, every message carries an HMAC-SHA256 tag over
// its channel and payload; a node drops and counts (Stats.Rejected) any
// message without a valid tag, so that write access to Redis is not enough
// to inject frames into rooms. Without it, Redis is trusted.
//
// # During an outage
//
// Publish fails within Options.PublishTimeout with an error wrapping
// ErrUnavailable; it never hangs on a dead Redis. Subscribe fails the same
// way while the topic's pub/sub connection is down. Health reports the
// outage, so a readiness probe takes the node out of rotation. The broker
// reconnects with jittered backoff and resubscribes every topic that is
// still wanted; Health turns nil again once that is complete.
//
// A liveness probe covers the failures that no error reports: every
// Options.ProbeInterval the node publishes to a channel of its own and
// expects the message back through each pub/sub connection. If it has not
// arrived by the next interval, Health fails and the connection is replaced
// and resubscribed.
//
// # Limits and presence across nodes
//
// Three more types share the Redis, each with its own options and, unless
// given a rueidis.Client, its own connection:
//
//	limiter, err := redis.NewLimiter(redis.LimiterOptions{Addrs: addrs, PerUser: 5})
//	presence, err := redis.NewPresence(redis.PresenceOptions{Addrs: addrs})
//	h, err := hub.New(hub.Options{Admit: limiter.Admit, Presence: presence, ...})
//
// Limiter caps each user's connections across every node. Every
// connection holds a lease, a member of the sorted set
// "<prefix>lease:{<user>}" scored by its expiry; one Lua script drops
// expired leases, counts the rest and adds one below the limit, so two
// nodes can never both take the last slot. Each node refreshes all its
// leases every RefreshInterval in one pipeline, so a node that dies frees
// its users' slots within LeaseTTL (30 s by default), and a node that
// shuts down cleanly frees them at once. A refusal is the same 429
// CONNECTION_LIMIT_EXCEEDED, wrapping guard.ErrUserLimit, as guard's
// node-local limit. While Redis fails, Admit refuses with 503 UNAVAILABLE
// within Timeout (a dead server answers in about a millisecond); with
// FailOpen it admits instead, capped by the node's own connections, and
// writes the leases once Redis is back.
//
// Presence records who is in which room in "<prefix>presence:{<room>}",
// one member per connection, scored by expiry. The hub's Add and Remove
// calls never wait for Redis: they update the node's own record and queue
// the write for one goroutine, which also writes every membership again
// each RefreshInterval. That keeps entries alive, lets a dead node's
// entries expire within TTL, and repairs what a full queue or an outage
// lost. Users drops expired entries and lists the rest.
//
// Throttle is a GCRA rate limit per key, for a handshake throttle shared by
// every node; its Middleware answers 429 RATE_LIMITED with
// Retry-After.
//
// Times are the Redis server's (the scripts call TIME), never a node's, so
// clock skew between nodes cannot expire another node's leases. The braces
// in every key make the user or room the Redis Cluster hash tag, so each
// script touches one slot. Redis 5 or later is needed (scripts that write
// after reading the time).
package redis
