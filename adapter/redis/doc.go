// Package redis is the adapter.Broker for running several wsgate nodes
// behind a load balancer: broadcasts travel between nodes over Redis
// pub/sub, through github.com/redis/rueidis. Alongside it, a Limiter,
// a Presence and a Throttle make the per-user connection limit, room
// presence and the handshake throttle span every node, and Sessions keeps
// the session records of Socket.IO's connection state recovery
// (socketio.Recovery) where every node reads them, so that a client of a
// node that crashed resumes on another (one Lua script per operation,
// versioned records fenced against the connections a resume replaced).
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
// Live delivery is at most once. A message published while a node's
// pub/sub connection is down never reaches that node; what a client missed
// is recovered from a stream (below), not replayed by the broker. Messages
// of one topic reach the handler in the order Redis sent them. Received
// messages wait in a bounded queue (Options.DeliveryBuffer) for a single
// delivery goroutine, so a slow handler costs dropped messages, counted in
// Stats.Dropped, never a stalled connection.
//
// With Options.HMACKey set, every message carries an HMAC-SHA256 tag over
// its channel, its payload and a header: a format version, the sending
// node's random id, a per-node sequence number and the sender's time. A
// node drops and counts (Stats.Rejected) any message without a valid tag,
// so that write access to Redis is not enough to inject frames into rooms,
// and drops a message it has accepted before (Stats.Replayed) or whose
// time is more than Options.ReplayWindow from its own clock (Stats.Stale),
// so that read and write access is not enough to repeat one. Nodes' clocks
// must agree within the window, one minute by default. All of it is checked
// as the message arrives, before it is queued, so a flood of forgeries or
// replays never takes the place of a genuine message. Without a key, Redis
// is trusted.
//
// # Streams and recovery
//
// A publish with adapter.StreamOptions is one script call (EVALSHA, EVAL
// when Redis does not have the script yet) that reads or creates the
// topic's epoch, increments its offset, appends the signed payload to a
// Redis stream under that offset (XADD, MAXLEN Size, exact), sets the
// expiries, and publishes the message with its position in front. Since
// all of it happens in one script, subscribers receive a topic's messages
// in offset order. History is one script call too: the position and,
// when all of them can be returned, the entries after the client's.
//
// A topic's keys share its channel's hash slot, so each script touches one
// slot of a Redis Cluster:
//
//	{<prefix><topic>}:m         hash: e (epoch), o (top offset), r (run_id
//	                            of the server that wrote them); lives MetaTTL
//	{<prefix><topic>}:s         stream: entry <offset>-0, fields t (Redis
//	                            time, ms) and d (the signed payload); lives TTL
//	{<prefix><topic>}:i:<hash>  the position of the first publish with an
//	                            idempotency key; lives IdempotencyTTL
//
// A topic with a brace in it gets a hash tag that lands on its channel's
// slot instead. Idempotency keys are per topic: the same key on two topics
// is two keys.
//
// What the HMAC covers: the payload, as the publishing node sealed it, and
// the channel, both live and in the stream; History checks every entry's
// tag and refuses the whole recovery if one is wrong. What it does not
// cover: the position (offset, epoch), which Redis assigns inside the
// script, where the key is not available. Whoever can write to Redis can
// therefore reorder, drop or re-number history, or make clients believe
// they missed messages; they cannot make a node deliver a payload that no
// node sealed. The tag stops forged deliveries, not a corrupted store.
// Replay protection applies to live delivery: a stored message is old and
// was delivered live before, so History checks its tag only, and a stored
// message published again is refused as a replay whatever position it is
// given.
//
// # What survives what
//
// Recovery is all or nothing, and a lost position is detected: the epoch
// changes when the position key is gone, whether it expired (MetaTTL after
// the last publish or read), was evicted, flushed, or lost in a restart
// without persistence. Clients holding the old epoch are told they cannot
// recover.
//
// A position that went back is detected too. Redis restarted from an RDB
// snapshot or an AOF not fsynced on every write, or a replica promoted
// before it received the last writes (replication is asynchronous), holds
// a topic's position as it was a moment before, and would give out again
// offsets that clients already saw. So the position records the run_id of
// the server process that wrote it, and a script run by another process
// starts a new epoch. The cost: every restart and every failover starts a
// new epoch for every topic, persistence or not, and no client recovers
// across one; clients are told so and reload. Each node learns the run_id
// without asking for it on every publish: it runs its own copy of the
// script, loaded on one server process with EVAL (which then asks INFO,
// once), and EVALSHA of that copy fails with NOSCRIPT anywhere else, since
// Redis neither persists nor replicates loaded scripts. A Redis that keeps
// scripts across restarts (none does today) would defeat the check.
//
// Idempotency keys survive what the persistence keeps: a key lost in a
// crash, a failover or an eviction lets a retry through. Eviction, missing
// or lossy persistence and replicas are reported by CheckStore, which New
// calls once and logs.
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
