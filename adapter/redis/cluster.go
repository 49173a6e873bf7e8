package redis

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// numSlots is the size of the Redis Cluster key space.
const numSlots = 16384

// slotOf returns the cluster slot of key: CRC16 (XMODEM) of the key, or of
// its hash tag — the text between the first '{' and the next '}', if not
// empty — modulo 16384, as Redis computes it.
func slotOf(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % numSlots
}

// routing maps channels to shards. It is immutable; a topology change
// replaces it under Broker.mu.
type routing struct {
	shards []*shard
	owner  []uint16 // cluster: slot → index+1 in shards, 0 when unserved; nil otherwise
	probes []string // probe channel of each shard
}

// shardFor returns the shard serving channel, or nil when its slot has no
// master.
func (r *routing) shardFor(channel string) *shard {
	if r.owner == nil {
		return r.shards[0]
	}
	if i := r.owner[slotOf(channel)]; i != 0 {
		return r.shards[i-1]
	}
	return nil
}

// newRouting builds the routing for masters, reusing the shards in keep.
// In a cluster, each shard's probe channel carries a hash tag chosen to land
// on one of its own slots, so that every master's connection is probed.
func (b *Broker) newRouting(masters []string, owner []uint16, keep map[string]*shard) *routing {
	r := &routing{owner: owner, probes: make([]string, len(masters))}
	base := b.opts.Prefix + "probe:" + b.nodeID
	for i, addr := range masters {
		s := keep[addr]
		if s == nil {
			s = newShard(b, addr)
		}
		r.shards = append(r.shards, s)
		if owner == nil {
			r.probes[i] = base
			continue
		}
		for n := range 1 << 16 {
			tag := strconv.Itoa(n)
			if owner[slotOf(tag)] == uint16(i+1) {
				r.probes[i] = base + ":{" + tag + "}"
				break
			}
		}
	}
	return r
}

// probeChannel returns s's probe channel in the current routing.
func (b *Broker) probeChannel(s *shard) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for i, x := range b.route.shards {
		if x == s {
			return b.route.probes[i]
		}
	}
	return ""
}

// fetchSlots reads CLUSTER SLOTS: the master addresses, sorted, and the
// owner table that newRouting expects. Addresses are formed as rueidis forms
// them, so that they match the keys of Client.Nodes.
func fetchSlots(ctx context.Context, client rueidis.Client, fallback string) ([]string, []uint16, error) {
	entries, err := client.Do(ctx, client.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return nil, nil, fmt.Errorf("redis: CLUSTER SLOTS: %w", err)
	}
	type span struct {
		from, to int64
		addr     string
	}
	var spans []span
	seen := map[string]bool{}
	var masters []string
	for _, e := range entries {
		v, err := e.ToArray()
		if err != nil || len(v) < 3 {
			continue
		}
		from, err1 := v[0].AsInt64()
		to, err2 := v[1].AsInt64()
		node, err3 := v[2].ToArray()
		if err1 != nil || err2 != nil || err3 != nil || len(node) < 2 || from < 0 || to >= numSlots || from > to {
			continue
		}
		host, _ := node[0].ToString()
		port, err := node[1].AsInt64()
		if err != nil || host == "?" {
			continue
		}
		if host == "" {
			host, _, _ = net.SplitHostPort(fallback)
		}
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		spans = append(spans, span{from, to, addr})
		if !seen[addr] {
			seen[addr] = true
			masters = append(masters, addr)
		}
	}
	if len(masters) == 0 {
		return nil, nil, fmt.Errorf("redis: CLUSTER SLOTS: no master serves any slot")
	}
	slices.Sort(masters)
	owner := make([]uint16, numSlots)
	for _, sp := range spans {
		idx := uint16(slices.Index(masters, sp.addr) + 1)
		for slot := sp.from; slot <= sp.to; slot++ {
			owner[slot] = idx
		}
	}
	return masters, owner, nil
}

// triggerRefresh asks the topology goroutine to reload the slot map. It
// never blocks; requests made while one is pending merge.
func (b *Broker) triggerRefresh() {
	if !b.opts.Cluster {
		return
	}
	select {
	case b.refresh <- struct{}{}:
	default:
	}
}

// topologyRetry is how often the slot map is reloaded while a pub/sub
// connection is down: a master that died is replaced by its replica within
// a failover, and the sooner the node sees it, the fewer messages the gap
// costs. A failed connection asks for a reload too, but only as often as
// its backoff lets it retry.
const topologyRetry = 250 * time.Millisecond

// topologyLoop reloads the slot map on request, and regularly while a
// connection is down.
func (b *Broker) topologyLoop() {
	defer b.wg.Done()
	t := time.NewTicker(topologyRetry)
	defer t.Stop()
	for {
		select {
		case <-b.refresh:
		case <-t.C:
			if !b.anyShardDown() {
				continue
			}
		case <-b.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
		masters, owner, err := fetchSlots(ctx, b.client, b.opts.Addrs[0])
		cancel()
		if err != nil {
			b.log.Warn("redis_topology_failed", slog.String("error", err.Error()))
			continue
		}
		b.applyTopology(masters, owner)
	}
}

// anyShardDown reports whether a pub/sub connection is down or still
// resubscribing.
func (b *Broker) anyShardDown() bool {
	b.mu.RLock()
	shards := b.route.shards
	b.mu.RUnlock()
	for _, s := range shards {
		s.mu.Lock()
		down := s.conn == nil || !s.ready
		s.mu.Unlock()
		if down {
			return true
		}
	}
	return false
}

// applyTopology switches to a new slot map. A shard whose master is gone
// stops, a new master gets a shard, and a shard whose slots changed starts
// a new session with the channels it serves now. A shard whose master kept
// exactly its slots, like every other master in a failover, keeps its
// connection: recycling it would lose the messages of the resubscription.
func (b *Broker) applyTopology(masters []string, owner []uint16) {
	b.mu.Lock()
	old := b.route
	same := len(old.shards) == len(masters) && slices.Equal(old.owner, owner)
	for i := 0; same && i < len(masters); i++ {
		same = old.shards[i].addr == masters[i]
	}
	if same || b.closed.Load() {
		b.mu.Unlock()
		return
	}
	keep := make(map[string]*shard, len(old.shards))
	for _, s := range old.shards {
		keep[s.addr] = s
	}
	b.route = b.newRouting(masters, owner, keep)
	var gone, changed []*shard
	for _, s := range b.route.shards {
		if keep[s.addr] == s {
			if slotsChanged(old, b.route, s) {
				changed = append(changed, s)
			}
			delete(keep, s.addr)
		} else {
			// Started under the lock so that Close, which collects the
			// shards under it, always waits for running goroutines only.
			go s.run()
		}
	}
	for _, s := range keep {
		gone = append(gone, s)
	}
	b.mu.Unlock()

	b.log.Info("redis_topology_changed", slog.Any("masters", masters))
	for _, s := range changed {
		s.recycle()
	}
	for _, s := range gone {
		close(s.stop)
		<-s.done
	}
}

// slotsChanged reports whether s serves other slots in next than in prev.
func slotsChanged(prev, next *routing, s *shard) bool {
	if prev.owner == nil || next.owner == nil {
		return true
	}
	for slot := range numSlots {
		was := prev.owner[slot] != 0 && prev.shards[prev.owner[slot]-1] == s
		is := next.owner[slot] != 0 && next.shards[next.owner[slot]-1] == s
		if was != is {
			return true
		}
	}
	return false
}
