package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
)

func TestSlotOf(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	tests := []struct {
		key  string
		want uint16
	}{
		{"123456789", 12739}, // the CRC16/XMODEM check value 0x31C3
		{"foo", 12182},
		{"bar", 5061},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"foo{}{bar}", 8363}, // empty tag: the whole key is hashed
		{"foo{{bar}}zap", 4015},
		{"", 0},
	}
	for _, tt := range tests {
		if got := slotOf(tt.key); got != tt.want {
			t.Errorf("slotOf(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	// Only the probe each connection sends when it comes up, so that the
	// SPUBLISH count below is exact.
	opts := Options{Addrs: c.Addrs(), ProbeInterval: time.Hour}
	a, _ := node(t, opts)
	b, sb := node(t, opts)

	// Topics spread over every master.
	var topics []string
	perShard := map[*shard]int{}
	for i := 0; len(perShard) < 3 || len(topics) < 12; i++ {
		topic := "room:t" + strconv.Itoa(i)
		topics = append(topics, topic)
		perShard[b.route.shardFor("wsgate:"+topic)]++
	}
	if len(b.route.shards) != 3 {
		t.Fatalf("%d shards for 3 masters", len(b.route.shards))
	}

	t.Run("slots_match_redis", func(t *testing.T) {
		srv := c.Servers()[0]
		for _, key := range append([]string{"{user1000}.x", "a{b}c"}, topics...) {
			got, err := srv.Do("CLUSTER", "KEYSLOT", "wsgate:"+key)
			if err != nil || got != strconv.Itoa(int(slotOf("wsgate:"+key))) {
				t.Fatalf("CLUSTER KEYSLOT %s = %s, %v; slotOf = %d", key, got, err, slotOf("wsgate:"+key))
			}
		}
	})

	t.Run("every_topic_delivers_across_nodes_with_one_SPUBLISH_each", func(t *testing.T) {
		subscribe(t, b, topics...)
		before := 0
		for _, addr := range c.Addrs() {
			before += commandCalls(t, rawClient(t, addr), "spublish")
		}
		for _, topic := range topics {
			publish(t, a, topic, []byte(topic))
		}
		after := 0
		for _, addr := range c.Addrs() {
			after += commandCalls(t, rawClient(t, addr), "spublish")
		}
		if got := after - before; got != len(topics) {
			t.Fatalf("%d SPUBLISH for %d broadcasts", got, len(topics))
		}
		got := map[string]bool{}
		for range topics {
			select {
			case m := <-sb.ch:
				got[m.topic] = string(m.payload) == m.topic
			case <-time.After(waitFor):
				t.Fatalf("delivered %v of %v", got, topics)
			}
		}
		for _, topic := range topics {
			if !got[topic] {
				t.Fatalf("%s not delivered: %v", topic, got)
			}
		}
	})

	t.Run("each_master_holds_only_the_shard_channels_of_its_slots", func(t *testing.T) {
		var all []string
		for _, addr := range c.Addrs() {
			held := channels(t, rawClient(t, addr), true, "wsgate:room:*")
			for _, ch := range held {
				if s := b.route.shardFor(ch); s.addr != addr {
					t.Errorf("%s held by %s, slot owned by %s", ch, addr, s.addr)
				}
			}
			if len(held) == 0 {
				t.Errorf("master %s holds no channel", addr)
			}
			all = append(all, held...)
		}
		slices.Sort(all)
		want := make([]string, len(topics))
		for i, topic := range topics {
			want[i] = "wsgate:" + topic
		}
		slices.Sort(want)
		if !slices.Equal(all, want) {
			t.Fatalf("shard channels %v, want %v", all, want)
		}
	})

	t.Run("Unsubscribe_removes_the_shard_channel", func(t *testing.T) {
		if err := b.Unsubscribe(context.Background(), topics[0]); err != nil {
			t.Fatal(err)
		}
		addr := b.route.shardFor("wsgate:" + topics[0]).addr
		if held := channels(t, rawClient(t, addr), true, "wsgate:"+topics[0]); len(held) != 0 {
			t.Fatalf("still held: %v", held)
		}
	})

	t.Run("every_master_connection_is_probed", func(t *testing.T) {
		for _, s := range b.route.shards {
			s.mu.Lock()
			ch := s.probeCh
			s.mu.Unlock()
			if b.route.shardFor(ch) != s {
				t.Fatalf("probe channel %s of %s lands on another master", ch, s.addr)
			}
			eventually(t, "first probe back from "+s.addr, func() error {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.probeRecv == 0 {
					return fmt.Errorf("probe %d sent, none back", s.probeSent)
				}
				return nil
			})
		}
		if err := healthy(b); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("killed_shard_connections_are_resubscribed", func(t *testing.T) {
		for _, srv := range c.Servers() {
			if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "resubscribed", func() error {
			if st := b.Stats(); st.Resubscribes < 3 {
				return fmt.Errorf("stats %+v", st)
			}
			return healthy(b)
		})
		for _, topic := range topics[1:] {
			marker := []byte("again " + topic)
			publish(t, a, topic, marker)
			sb.waitMessage(t, topic, marker)
		}
	})
}

// TestTopologyChangeKeepsUnaffectedShards replaces one master in the slot
// map, as a failover does, and checks that the connections to the other
// masters are kept: recycling them would lose what is published while they
// resubscribe.
func TestTopologyChangeKeepsUnaffectedShards(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	opts := Options{Addrs: c.Addrs(), ProbeInterval: time.Hour}
	pub, _ := node(t, opts)
	b, sb := node(t, opts)

	b.mu.RLock()
	route := b.route
	b.mu.RUnlock()
	victim := route.shards[0]
	topicOf := map[*shard]string{}
	for i := 0; len(topicOf) < 3; i++ {
		topic := "room:k" + strconv.Itoa(i)
		if s := route.shardFor("wsgate:" + topic); topicOf[s] == "" {
			topicOf[s] = topic
			subscribe(t, b, topic)
		}
	}
	conns := map[*shard]any{}
	for _, s := range route.shards {
		conns[s] = s.liveConn()
	}

	// The victim's slots now belong to another address: a promoted replica.
	masters := slices.Clone(route.shards)
	addrs := make([]string, len(masters))
	for i, s := range masters {
		addrs[i] = s.addr
	}
	addrs[0] = "127.0.0.1:1"
	b.applyTopology(addrs, slices.Clone(route.owner))

	b.mu.RLock()
	next := b.route
	b.mu.RUnlock()
	for _, s := range route.shards[1:] {
		if !slices.Contains(next.shards, s) {
			t.Fatalf("shard %s was replaced", s.addr)
		}
		topic := topicOf[s]
		publish(t, pub, topic, []byte("through "+s.addr))
		sb.waitMessage(t, topic, []byte("through "+s.addr))
		if s.liveConn() != conns[s] {
			t.Errorf("the connection to %s, whose slots did not change, was replaced", s.addr)
		}
	}
	if slices.Contains(next.shards, victim) {
		t.Fatalf("the shard of the replaced master %s is still routed", victim.addr)
	}
	if st := b.Stats(); st.Resubscribes != 0 {
		t.Errorf("stats %+v: connections were resubscribed", st)
	}
}
