package hub

import (
	"context"
	"time"
)

// Observer receives the hub's operational events, for metrics. The hub
// calls it on hot paths: implementations must be cheap, safe for concurrent
// use and never block. Label values the hub passes are bounded: reasons and
// outcomes come from fixed sets, and event names are registered ones
// (anything else arrives as UnknownEvent).
//
// Embed NopObserver to implement only the methods you need.
type Observer interface {
	// Refused counts a request refused before the upgrade, by the event name
	// the security log gives it: "bad_handshake", "shutting_down",
	// "origin_rejected", "subprotocol_missing", "unauthorized", "key_lookup",
	// "user_connection_limit", "limiter_unavailable" (or "admit_<code>" for
	// another code of an Admit refusal). It also satisfies guard.Observer,
	// whose middleware adds "handshake_throttled" and "node_full".
	Refused(reason string)
	// AuthFailed counts a credential that did not verify, by auth.Reason:
	// "no_token", "invalid", "expired", "too_large", "key_lookup", …, and
	// "different_user" for a refresh with another user's token.
	AuthFailed(reason string)
	// Connected counts an authenticated connection.
	Connected()
	// Disconnected counts the end of an authenticated connection with the
	// reason recorded in the security log.
	Disconnected(reason string, lifetime time.Duration)
	// MessageIn counts an inbound message by event (or verb: "$join",
	// "$leave", "$auth") and outcome: "ok", "invalid", "unknown_event",
	// "rate_limited", "forbidden", "error" (a handler's error, or a room
	// rule that failed rather than denied), "timeout", "busy", "panic".
	MessageIn(event, outcome string)
	// HandlerDone reports how long a handler ran.
	HandlerDone(event string, d time.Duration)
	// Delivered counts frames queued to local connections by one broker
	// delivery; Dropped counts frames lost to a full queue (Drop policy);
	// SlowConsumer counts disconnects for a full queue.
	Delivered(n int)
	Dropped()
	SlowConsumer()
	// Published reports a broadcast handed to the broker, its latency and
	// error.
	Published(event string, d time.Duration, err error)
}

// Presence is a store of who is in which room across nodes. Add and
// Remove are called on the join and leave paths and must not block: a
// networked implementation queues them and keeps its entries alive with a
// TTL so that a crashed node's entries expire.
type Presence interface {
	Add(room, userID, connID string)
	Remove(room, userID, connID string)
	Users(ctx context.Context, room string) ([]string, error)
}

// UnknownEvent is the event label for messages naming no registered event.
const UnknownEvent = "_unknown"

// NopObserver implements Observer and does nothing.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Refused does nothing.
func (NopObserver) Refused(string) {}

// AuthFailed does nothing.
func (NopObserver) AuthFailed(string) {}

// Connected does nothing.
func (NopObserver) Connected() {}

// Disconnected does nothing.
func (NopObserver) Disconnected(string, time.Duration) {}

// MessageIn does nothing.
func (NopObserver) MessageIn(string, string) {}

// HandlerDone does nothing.
func (NopObserver) HandlerDone(string, time.Duration) {}

// Delivered does nothing.
func (NopObserver) Delivered(int) {}

// Dropped does nothing.
func (NopObserver) Dropped() {}

// SlowConsumer does nothing.
func (NopObserver) SlowConsumer() {}

// Published does nothing.
func (NopObserver) Published(string, time.Duration, error) {}
