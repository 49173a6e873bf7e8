package redis

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Defaults for the zero values of Options.
const (
	// DefaultPrefix is the channel prefix when Options.Prefix is empty.
	DefaultPrefix = "wsgate:"
	// DefaultPublishTimeout bounds Publish when Options.PublishTimeout is 0.
	DefaultPublishTimeout = 2 * time.Second
	// DefaultDeliveryBuffer is the queue length when Options.DeliveryBuffer is 0.
	DefaultDeliveryBuffer = 4096
	// DefaultProbeInterval is the probe period when Options.ProbeInterval is 0.
	DefaultProbeInterval = 5 * time.Second
	// DefaultReplayWindow is the replay window when Options.ReplayWindow is 0.
	DefaultReplayWindow = time.Minute
)

// MinHMACKeyLen is the shortest HMACKey New accepts.
const MinHMACKeyLen = 16

// Options configures New. The zero value of every field but Addrs is valid
// and documented with its default.
type Options struct {
	// Client is a rueidis client to share with the Limiter, Presence and
	// Throttle (and the service's own Redis use): the broker publishes and
	// runs its scripts through it, and takes its pub/sub connections from
	// it (Client.Dedicate, per node). The caller keeps it: Close does not
	// close it. Set either Client or Addrs and its companions (Cluster,
	// Username, Password, ClientOption), not both; with Client, Cluster
	// follows the client's mode.
	Client rueidis.Client
	// Addrs are Redis addresses (host:port). One address means a single
	// Redis; several addresses, or Cluster, mean a Redis Cluster, for which
	// any reachable subset of nodes is enough to discover the rest.
	Addrs []string
	// Cluster selects Redis Cluster with sharded pub/sub (SPUBLISH and
	// SSUBSCRIBE) even when Addrs holds one address. A channel then lives on
	// the shard that owns its slot, so traffic does not cross the whole
	// cluster bus.
	Cluster bool

	// Username and Password authenticate every connection (AUTH or ACL).
	Username, Password string

	// Prefix is prepended to every Redis channel so that several
	// applications can share one Redis without seeing each other's
	// messages. Default DefaultPrefix. In Cluster mode it may not contain
	// '{' or '}', which would pin every channel to one slot.
	Prefix string

	// HMACKey, when set, authenticates every message between nodes: each
	// payload carries a 16-byte HMAC-SHA256 tag over its channel, its bytes
	// and a header (format version, the sending node's random id, a
	// sequence number and the sender's time); messages with a missing or
	// wrong tag are dropped and counted in Stats.Rejected, and a message
	// already accepted, or sent outside ReplayWindow, is dropped and counted
	// in Stats.Replayed or Stats.Stale. Without it, anyone who can PUBLISH
	// to the Redis can inject frames into every room, or repeat a captured
	// one. At least MinHMACKeyLen bytes; all nodes must share it and run
	// the same wire format. Default: no authentication.
	HMACKey []byte

	// ReplayWindow, with HMACKey, is how far a message's time may be from
	// the receiver's clock, either way, for it to be delivered; within it,
	// each message is delivered once. It must exceed the clock skew
	// between nodes plus the delivery delay: a node whose clock is off by
	// more loses its messages, counted in Stats.Stale and logged, so keep
	// the clocks synchronised (NTP holds them within milliseconds). A
	// longer window tolerates more skew and costs memory only per sending
	// node (about 600 bytes each, forgotten after two to three windows of
	// silence).
	// At least one second. Default DefaultReplayWindow.
	ReplayWindow time.Duration

	// PublishTimeout bounds Publish (and each subscribe command) even when
	// the caller's context has no deadline, so that a Redis outage turns
	// into a prompt error rather than a hang. Default DefaultPublishTimeout.
	PublishTimeout time.Duration

	// DeliveryBuffer is the number of received messages that may wait for
	// the handler. Messages arriving while it is full are dropped and
	// counted in Stats.Dropped, so that a slow handler never stalls the
	// Redis connection. Default DefaultDeliveryBuffer.
	DeliveryBuffer int

	// ProbeInterval is how often each pub/sub connection is checked end to
	// end: the node publishes to a channel of its own and expects the
	// message back through its subscription within the interval. A late
	// probe fails Health and makes the node reconnect and resubscribe.
	// At least 10ms. Default DefaultProbeInterval.
	ProbeInterval time.Duration

	// Logger receives connection state changes and rejected messages,
	// never payloads. Default: discard.
	Logger *slog.Logger

	// ClientOption is the starting point for the rueidis clients, for TLS,
	// dialer and buffer settings. The broker overrides InitAddress,
	// credentials (when Username or Password is set), and turns off
	// client-side caching and retries: a retried PUBLISH could deliver a
	// message twice. Default: rueidis defaults, with the dial timeout set to
	// PublishTimeout.
	ClientOption *rueidis.ClientOption
}

// Stats are counters since New. They only grow.
type Stats struct {
	// Published counts messages Redis accepted.
	Published uint64
	// PublishErrors counts Publish calls that returned an error.
	PublishErrors uint64
	// Delivered counts messages handed to the handler.
	Delivered uint64
	// Dropped counts messages lost because the delivery buffer was full.
	Dropped uint64
	// Rejected counts messages dropped for a missing or wrong HMAC tag, or
	// a format version this node does not know.
	Rejected uint64
	// Replayed counts signed messages dropped because this node had
	// accepted the same message before, or one so much newer from the same
	// node (4096 messages) that it can no longer tell.
	Replayed uint64
	// Stale counts signed messages dropped because their time was outside
	// ReplayWindow: a replay of an old message, or a sender's clock off by
	// more than the window.
	Stale uint64
	// Resubscribes counts pub/sub connections re-established, with every
	// wanted topic subscribed again, after a loss.
	Resubscribes uint64
}

var (
	// ErrUnavailable is wrapped by Health, Publish and Subscribe errors
	// while a pub/sub connection is down or still resubscribing.
	ErrUnavailable = errors.New("redis: broker unavailable")
	// ErrProbeLate is wrapped by Health when a liveness probe did not come
	// back through the subscription within ProbeInterval.
	ErrProbeLate = errors.New("redis: liveness probe late")
)

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Client != nil {
		if len(o.Addrs) > 0 || o.Cluster || o.Username != "" || o.Password != "" || o.ClientOption != nil {
			return o, errors.New("redis: set Options.Client or Options.Addrs, not both")
		}
		// The addresses name the client's nodes, for logs and for the
		// single node's pub/sub connection.
		for addr := range o.Client.Nodes() {
			o.Addrs = append(o.Addrs, addr)
		}
		slices.Sort(o.Addrs)
		o.Cluster = o.Client.Mode() == rueidis.ClientModeCluster
		if len(o.Addrs) == 0 {
			return o, errors.New("redis: Options.Client knows no node")
		}
	}
	if len(o.Addrs) == 0 {
		return o, errors.New("redis: Options.Addrs is empty")
	}
	for _, a := range o.Addrs {
		if a == "" {
			return o, errors.New("redis: Options.Addrs holds an empty address")
		}
	}
	o.Addrs = append([]string(nil), o.Addrs...)
	o.Cluster = o.Cluster || len(o.Addrs) > 1 && o.Client == nil
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Cluster && strings.ContainsAny(o.Prefix, "{}") {
		return o, fmt.Errorf("redis: Options.Prefix %q contains a hash tag brace", o.Prefix)
	}
	if o.HMACKey != nil {
		if len(o.HMACKey) < MinHMACKeyLen {
			return o, fmt.Errorf("redis: Options.HMACKey has %d bytes, need at least %d", len(o.HMACKey), MinHMACKeyLen)
		}
		o.HMACKey = append([]byte(nil), o.HMACKey...)
	}
	switch {
	case o.PublishTimeout < 0:
		return o, errors.New("redis: Options.PublishTimeout is negative")
	case o.PublishTimeout == 0:
		o.PublishTimeout = DefaultPublishTimeout
	}
	switch {
	case o.DeliveryBuffer < 0:
		return o, errors.New("redis: Options.DeliveryBuffer is negative")
	case o.DeliveryBuffer == 0:
		o.DeliveryBuffer = DefaultDeliveryBuffer
	}
	switch {
	case o.ReplayWindow == 0:
		o.ReplayWindow = DefaultReplayWindow
	case o.ReplayWindow < time.Second:
		return o, fmt.Errorf("redis: Options.ReplayWindow %s is below 1s", o.ReplayWindow)
	}
	switch {
	case o.ProbeInterval == 0:
		o.ProbeInterval = DefaultProbeInterval
	case o.ProbeInterval < 10*time.Millisecond:
		return o, fmt.Errorf("redis: Options.ProbeInterval %s is below 10ms", o.ProbeInterval)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// clientOption builds the rueidis options for addrs.
func (o *Options) clientOption(addrs []string, single bool) rueidis.ClientOption {
	var co rueidis.ClientOption
	if o.ClientOption != nil {
		co = *o.ClientOption
	}
	co.InitAddress = addrs
	if o.Username != "" || o.Password != "" {
		co.Username, co.Password = o.Username, o.Password
	}
	co.DisableCache = true
	co.DisableRetry = true
	co.ForceSingleClient = single
	if co.Dialer.Timeout == 0 {
		co.Dialer.Timeout = o.PublishTimeout
	}
	return co
}
