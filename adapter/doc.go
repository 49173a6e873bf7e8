// Package adapter defines Broker, the seam between a wsgate hub and whatever
// carries its broadcasts between processes.
//
// A hub publishes every broadcast once, to a topic, already encoded. The broker
// delivers it to every node that subscribed to the topic, including the
// publishing node itself; each node then fans out to its local connections.
// Nodes subscribe only to topics that have local members, so a room that lives
// on one node never costs the others anything.
//
// Two implementations ship with wsgate:
//
//   - adapter/memory: the embedded default, for one process (and for tests
//     that simulate several nodes in one process);
//   - adapter/redis: Redis pub/sub, for several processes.
//
// The smallest use is no use at all: a hub built without a Broker creates a
// memory broker for itself.
package adapter
