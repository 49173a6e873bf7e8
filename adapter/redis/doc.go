// Package redis is the adapter.Broker for running several wsgate nodes
// behind a load balancer: broadcasts travel between nodes over Redis
// pub/sub, through github.com/redis/rueidis.
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
package redis
