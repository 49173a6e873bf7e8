package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
)

// Broker is an adapter.Broker on Redis pub/sub. Create it with New.
type Broker struct {
	opts    Options
	log     *slog.Logger
	client  rueidis.Client // publishes, and hands out pub/sub connections
	sign    *signer        // nil without HMACKey
	replay  *replayGuard   // nil without HMACKey
	nodeID  string
	streams *incarnations // the stream script's copies on the server processes
	queue   chan inbound  // received messages waiting for the delivery goroutine
	stop    chan struct{} // closed by Close
	refresh chan struct{} // capacity 1: asks for a cluster topology reload
	wg      sync.WaitGroup
	closed  atomic.Bool
	stats   counters

	mu      sync.RWMutex // guards handler, topics and route; taken before shard.mu
	handler adapter.Handler
	topics  map[string]struct{} // wanted topics: resubscribed after every loss
	route   *routing
}

var _ adapter.Broker = (*Broker)(nil)

// inbound is a received message whose tag, if any, has been checked.
// payload is its own copy, which the handler may keep.
type inbound struct {
	channel string
	payload []byte
	pos     adapter.Position
}

type counters struct {
	published, publishErrors, delivered, dropped, rejected, replayed, stale, resubscribes atomic.Uint64
}

// New connects to Redis, subscribes the node's probe channel on every
// pub/sub connection, and returns once they are all up. It fails when the
// options are invalid or Redis cannot be reached within twice
// PublishTimeout.
func New(opts Options) (*Broker, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	client, err := o.connect()
	if err != nil {
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	b := &Broker{
		opts:    o,
		log:     o.Logger,
		client:  client,
		sign:    newSigner(o.HMACKey, id),
		nodeID:  hex.EncodeToString(id[:]),
		streams: newIncarnations(streamSrc, hex.EncodeToString(id[:]), o.Cluster),
		queue:   make(chan inbound, o.DeliveryBuffer),
		stop:    make(chan struct{}),
		refresh: make(chan struct{}, 1),
		topics:  make(map[string]struct{}),
	}
	if o.HMACKey != nil {
		b.replay = newReplayGuard(o.ReplayWindow)
	}
	if o.Cluster {
		ctx, cancel := context.WithTimeout(context.Background(), o.PublishTimeout)
		masters, owner, err := fetchSlots(ctx, client, o.Addrs[0])
		cancel()
		if err != nil {
			o.release(client)
			return nil, err
		}
		b.route = b.newRouting(masters, owner, nil)
	} else {
		b.route = b.newRouting([]string{""}, nil, nil)
	}

	b.mu.Lock()
	for _, s := range b.route.shards {
		go s.run()
	}
	b.mu.Unlock()
	b.wg.Add(2)
	go b.deliverLoop()
	go b.probeLoop()
	if o.Cluster {
		b.wg.Add(1)
		go b.topologyLoop()
	}

	deadline := time.NewTimer(2 * o.PublishTimeout)
	defer deadline.Stop()
	for _, s := range b.route.shards {
		select {
		case <-s.firstUp:
		case <-deadline.C:
			err := s.health(time.Now(), o.ProbeInterval)
			b.Close()
			return nil, fmt.Errorf("redis: subscribe: %w", err)
		}
	}
	b.logStoreRisks()
	return b, nil
}

// Attach implements adapter.Broker.
func (b *Broker) Attach(h adapter.Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed.Load():
		return adapter.ErrClosed
	case b.handler != nil:
		return adapter.ErrAttached
	}
	b.handler = h
	return nil
}

// Publish implements adapter.Broker with exactly one command whatever the
// number of subscribers: a PUBLISH (SPUBLISH in a cluster) or, with a
// stream or an idempotency key, one script call that also appends to the
// stream and checks the key. It returns within PublishTimeout; an error
// wraps ErrUnavailable when Redis could not be reached. An error does not
// prove the message was lost: a command already written may still be
// delivered, once; a retry with the same idempotency key then returns
// adapter.ErrDuplicate.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, opts adapter.PublishOptions) (adapter.Position, error) {
	if b.closed.Load() {
		return adapter.Position{}, adapter.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return adapter.Position{}, err
	}
	opts, err := opts.WithDefaults()
	if err != nil {
		return adapter.Position{}, fmt.Errorf("redis: publish %q: %w", topic, err)
	}
	channel := b.opts.Prefix + topic
	sealed := b.sign.seal(channel, payload)
	var pos adapter.Position
	if opts.Stream.Enabled() || opts.IdempotencyKey != "" {
		pos, err = b.publishScripted(ctx, channel, sealed, opts)
	} else {
		err = b.publish(ctx, channel, append([]byte{markPlain}, sealed...))
	}
	if errors.Is(err, adapter.ErrDuplicate) {
		return pos, err
	}
	if err != nil {
		b.stats.publishErrors.Add(1)
		return adapter.Position{}, fmt.Errorf("redis: publish %q: %w", topic, err)
	}
	b.stats.published.Add(1)
	return pos, nil
}

func (b *Broker) publish(ctx context.Context, channel string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	var cmd rueidis.Completed
	// BinaryString avoids a second copy: msg is ours and never reused.
	if b.opts.Cluster {
		cmd = b.client.B().Spublish().Channel(channel).Message(rueidis.BinaryString(msg)).Build()
	} else {
		cmd = b.client.B().Publish().Channel(channel).Message(rueidis.BinaryString(msg)).Build()
	}
	err := b.client.Do(ctx, cmd).Error()
	if err != nil && !isRedisErr(err) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// Subscribe implements adapter.Broker. It returns once Redis confirmed the
// subscription, or an error wrapping ErrUnavailable while the topic's
// pub/sub connection is down; the hub then retries on the next join.
func (b *Broker) Subscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	channel := b.opts.Prefix + topic
	b.mu.Lock()
	switch {
	case b.closed.Load():
		b.mu.Unlock()
		return adapter.ErrClosed
	case b.handler == nil:
		b.mu.Unlock()
		return adapter.ErrNotAttached
	}
	if _, ok := b.topics[topic]; ok {
		b.mu.Unlock()
		return nil
	}
	var conn rueidis.DedicatedClient
	if s := b.route.shardFor(channel); s != nil {
		conn = s.liveConn()
	}
	if conn == nil {
		b.mu.Unlock()
		return fmt.Errorf("redis: subscribe %q: %w", topic, ErrUnavailable)
	}
	// Wanted before the command is sent: a session starting meanwhile
	// includes it in its snapshot.
	b.topics[topic] = struct{}{}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	err := conn.Do(ctx, b.subscribeCmds(conn, []string{channel}, false)[0]).Error()
	if err == nil {
		return nil
	}
	// Not wanted after all: the hub will call again. A SUBSCRIBE that still
	// lands later is filtered on delivery and gone at the next reconnect.
	b.mu.Lock()
	delete(b.topics, topic)
	b.mu.Unlock()
	if re, ok := rueidis.IsRedisErr(err); ok {
		if _, moved := re.IsMoved(); moved {
			b.triggerRefresh()
		}
		return fmt.Errorf("redis: subscribe %q: %w", topic, err)
	}
	return fmt.Errorf("redis: subscribe %q: %w: %w", topic, ErrUnavailable, err)
}

// Unsubscribe implements adapter.Broker. Delivery of topic stops when it
// returns. The Redis subscription ends with the UNSUBSCRIBE or, if the
// connection is failing, with the connection; either way a reconnect does
// not restore it.
func (b *Broker) Unsubscribe(ctx context.Context, topic string) error {
	channel := b.opts.Prefix + topic
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return adapter.ErrClosed
	}
	if _, ok := b.topics[topic]; !ok {
		b.mu.Unlock()
		return nil
	}
	delete(b.topics, topic)
	var conn rueidis.DedicatedClient
	if s := b.route.shardFor(channel); s != nil {
		conn = s.liveConn()
	}
	b.mu.Unlock()
	if conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.PublishTimeout)
	defer cancel()
	err := conn.Do(ctx, b.subscribeCmds(conn, []string{channel}, true)[0]).Error()
	if err != nil && isRedisErr(err) {
		return fmt.Errorf("redis: unsubscribe %q: %w", topic, err)
	}
	return nil
}

// subscribeCmds builds (UN)SUBSCRIBE or, in a cluster, S(UN)SUBSCRIBE
// commands for channels, batched, one slot per sharded command.
func (b *Broker) subscribeCmds(dc rueidis.DedicatedClient, channels []string, unsub bool) []rueidis.Completed {
	build := func(batch []string) rueidis.Completed {
		switch {
		case b.opts.Cluster && unsub:
			return dc.B().Sunsubscribe().Channel(batch...).Build()
		case b.opts.Cluster:
			return dc.B().Ssubscribe().Channel(batch...).Build()
		case unsub:
			return dc.B().Unsubscribe().Channel(batch...).Build()
		default:
			return dc.B().Subscribe().Channel(batch...).Build()
		}
	}
	groups := [][]string{channels}
	if b.opts.Cluster && len(channels) > 1 {
		bySlot := make(map[uint16][]string)
		for _, ch := range channels {
			bySlot[slotOf(ch)] = append(bySlot[slotOf(ch)], ch)
		}
		groups = groups[:0]
		for _, g := range bySlot {
			groups = append(groups, g)
		}
	}
	var cmds []rueidis.Completed
	for _, g := range groups {
		for len(g) > 0 {
			n := min(len(g), subscribeBatch)
			cmds = append(cmds, build(g[:n]))
			g = g[n:]
		}
	}
	return cmds
}

// Health implements adapter.Broker. It reports, without a round trip, the
// first pub/sub connection that is down, still resubscribing, or whose
// liveness probe is late.
func (b *Broker) Health(ctx context.Context) error {
	if b.closed.Load() {
		return adapter.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	shards := b.route.shards
	b.mu.RUnlock()
	now := time.Now()
	for _, s := range shards {
		if err := s.health(now, b.opts.ProbeInterval); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Published:     b.stats.published.Load(),
		PublishErrors: b.stats.publishErrors.Load(),
		Delivered:     b.stats.delivered.Load(),
		Dropped:       b.stats.dropped.Load(),
		Rejected:      b.stats.rejected.Load(),
		Replayed:      b.stats.replayed.Load(),
		Stale:         b.stats.stale.Load(),
		Resubscribes:  b.stats.resubscribes.Load(),
	}
}

// Close implements adapter.Broker. It closes the pub/sub connections, so
// Redis drops the node's subscriptions, and waits for its goroutines,
// including a handler call in progress. Messages still queued are dropped.
// Against an unresponsive Redis it takes up to about a second, the time
// rueidis gives a silent connection to close.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	shards := b.route.shards
	b.mu.Unlock()
	close(b.stop)
	for _, s := range shards {
		<-s.done
	}
	b.wg.Wait()
	b.opts.release(b.client)
	return nil
}

// connect returns Options.Client, or a client of the broker's own.
func (o Options) connect() (rueidis.Client, error) {
	if o.Client != nil {
		return o.Client, nil
	}
	client, err := rueidis.NewClient(o.clientOption(o.Addrs, !o.Cluster))
	if err != nil {
		if client != nil {
			client.Close()
		}
		return nil, fmt.Errorf("redis: connect %v: %w", o.Addrs, err)
	}
	if o.Cluster && client.Mode() != rueidis.ClientModeCluster {
		client.Close()
		return nil, fmt.Errorf("redis: %v is not a Redis Cluster", o.Addrs)
	}
	return client, nil
}

// release closes client unless the caller passed it in.
func (o Options) release(client rueidis.Client) {
	if o.Client == nil {
		client.Close()
	}
}

// open checks a received message and returns its position and payload, a
// copy the handler may keep. It runs on rueidis' reader goroutine, before
// the message is queued, so that a forgery or a replay never takes a
// delivery slot: a flood of them costs a check each, never a genuine
// message.
func (b *Broker) open(channel, msg string) (adapter.Position, []byte, bool) {
	pos, sealed, err := splitPosition(msg)
	if err != nil {
		b.reject(channel)
		return pos, nil, false
	}
	payload, ok := b.openSealed(channel, sealed)
	return pos, payload, ok
}

// openSealed checks a sealed live message: its tag and, with a key, that it
// is neither a replay nor stale. Stored messages read back from a stream
// are checked by their tag only (see History): they are old and were
// delivered live before, by design.
func (b *Broker) openSealed(channel, sealed string) ([]byte, bool) {
	payload, h, ok := b.sign.open(channel, sealed)
	if !ok {
		b.reject(channel)
		return nil, false
	}
	if b.replay == nil {
		return payload, true
	}
	switch b.replay.check(h) {
	case stale:
		b.refuse(channel, &b.stats.stale, "time outside ReplayWindow")
		return nil, false
	case replayed:
		b.refuse(channel, &b.stats.replayed, "replayed")
		return nil, false
	}
	return payload, true
}

// enqueue is called on rueidis' reader goroutine: it must never block.
func (b *Broker) enqueue(channel string, payload []byte, pos adapter.Position) {
	select {
	case b.queue <- inbound{channel, payload, pos}:
	default:
		b.stats.dropped.Add(1)
	}
}

// deliverLoop is the only caller of the handler, so messages of one topic
// reach it in the order Redis sent them.
func (b *Broker) deliverLoop() {
	defer b.wg.Done()
	for {
		select {
		case in := <-b.queue:
			b.deliver(in)
		case <-b.stop:
			return
		}
	}
}

func (b *Broker) deliver(in inbound) {
	topic, ok := strings.CutPrefix(in.channel, b.opts.Prefix)
	if !ok {
		return
	}
	b.mu.RLock()
	h := b.handler
	_, want := b.topics[topic]
	b.mu.RUnlock()
	if h == nil || !want {
		return // a late message for a topic just unsubscribed
	}
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("redis_handler_panic", slog.String("topic", topic), slog.Any("panic", r))
		}
	}()
	h(adapter.Message{Topic: topic, Payload: in.payload, Pos: in.pos})
	b.stats.delivered.Add(1)
}

// reject counts a message with a bad tag or frame.
func (b *Broker) reject(channel string) {
	b.refuse(channel, &b.stats.rejected, "bad or missing HMAC tag")
}

// refuse counts a message refused for reason in counter. It logs the 1st,
// 2nd, 4th, 8th… of each kind, so that a flood of forgeries or replays is
// visible without flooding the log.
func (b *Broker) refuse(channel string, counter *atomic.Uint64, reason string) {
	n := counter.Add(1)
	if n&(n-1) == 0 {
		b.log.Warn("redis_message_rejected", slog.String("channel", channel),
			slog.String("reason", reason), slog.Uint64("total", n))
	}
}

// wanted reports whether channel is subscribed on purpose.
func (b *Broker) wanted(channel, probeCh string) bool {
	if channel == probeCh {
		return true
	}
	topic, ok := strings.CutPrefix(channel, b.opts.Prefix)
	if !ok {
		return false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok = b.topics[topic]
	return ok
}

func (b *Broker) probeLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.mu.RLock()
			shards := b.route.shards
			b.mu.RUnlock()
			for _, s := range shards {
				s.probeTick()
			}
		case <-b.stop:
			return
		}
	}
}

// sendProbe publishes the next probe for s. A failure needs no handling:
// the probe stays outstanding and the next tick recycles the connection.
func (b *Broker) sendProbe(s *shard) {
	channel, seq := s.nextProbe()
	if channel == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(b.opts.PublishTimeout, b.opts.ProbeInterval))
	defer cancel()
	payload := strconv.AppendUint(nil, seq, 10)
	if err := b.publish(ctx, channel, b.sign.seal(channel, payload)); err != nil {
		// The probe never left (after a restart the command connection can
		// still be the dead one): that says nothing about the subscription,
		// so it is not counted as outstanding; the next tick sends another.
		s.probeUnsent(seq)
		b.log.Debug("redis_probe_publish_failed", slog.String("addr", s.name()), slog.String("error", err.Error()))
		return
	}
	s.probePublished()
}

// nodeClient returns the client whose dedicated connections reach addr.
func (b *Broker) nodeClient(addr string) (rueidis.Client, error) {
	if addr == "" {
		return b.client, nil
	}
	if c, ok := b.client.Nodes()[addr]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("%s: %w", addr, errNoNode)
}

func isRedisErr(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re)
}
