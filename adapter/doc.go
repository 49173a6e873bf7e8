// Package adapter defines Broker, the seam between a wsgate hub and whatever
// carries its broadcasts between processes and keeps their history.
//
// A hub publishes every broadcast once, to a topic, already encoded. The broker
// delivers it to every node that subscribed to the topic, including the
// publishing node itself; each node then fans out to its local connections.
// Nodes subscribe only to topics that have local members, so a room that lives
// on one node never costs the others anything.
//
// # Streams and recovery
//
// A publish with StreamOptions also appends the message to the topic's
// stream and gives it a Position: offsets 1, 2, 3… per topic, within an
// epoch, a random string that changes whenever continuity was lost. The
// offset is assigned atomically with the delivery, so subscribers receive a
// topic's messages in offset order and can tell a gap from a duplicate. A
// client that comes back with the last position it saw asks History for
// what it missed, and gets all of it or nothing: a recovery never hands out
// part of what was missed as if it were all of it.
//
// A publish with an idempotency key is delivered at most once per key and
// topic within the key's window, so that a caller may retry a publish whose
// outcome it does not know.
//
// Two implementations ship with wsgate:
//
//   - adapter/memory: the embedded default, for one process (and for tests
//     that simulate several nodes in one process);
//   - adapter/redis: Redis pub/sub and streams, for several processes.
//
// The smallest use is no use at all: a hub built without a Broker creates a
// memory broker for itself.
package adapter
