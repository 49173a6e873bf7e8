package clustertest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/redistest"
)

// connSpec is one connection of a scenario: where it is, who it is, and
// which rooms it joins besides the automatic ones.
type connSpec struct {
	node  int
	id    identity
	rooms []string
}

// broadcastCase is one broadcast of a scenario: its unique event name,
// the node that publishes it, how, and which connections must receive it
// (exactly once) with which room field.
type broadcastCase struct {
	event string
	from  int
	send  func(ctx context.Context, h *hub.Hub, conns []*client) error
	to    func(spec connSpec, i int) bool
	room  string
}

var (
	u1    = identity{user: "u1", tenant: "t1"}
	u2    = identity{user: "u2", tenant: "t1"}
	u3    = identity{user: "u3", tenant: "t2"}
	u4    = identity{user: "u4", tenant: "t2"}
	root  = identity{user: "root", roles: []string{superAdmin}}
	root2 = identity{user: "root2", tenant: "t1", roles: []string{superAdmin}}
)

// scenario places connections of several users, tenants and roles on
// every node, several per node and per user.
func scenario(nodes int) []connSpec {
	last := nodes - 1
	return []connSpec{
		{0, u1, []string{"room:red"}},
		{0, u1, nil},
		{1, u1, []string{"room:blue"}},
		{last, u1, nil},
		{1, u2, []string{"room:red"}},
		{last, u3, []string{"room:red", "room:blue"}},
		{0, u4, nil},
		{last, root, []string{"room:blue"}},
		{0, root2, nil},
		{1 % nodes, root, nil},
	}
}

func in(r string) func(connSpec, int) bool {
	return func(s connSpec, _ int) bool { return slices.Contains(s.rooms, r) }
}

func user(u string) func(connSpec, int) bool {
	return func(s connSpec, _ int) bool { return s.id.user == u }
}

// The connections of scenario that Except leaves out: u2 on n1 and u1's
// first connection, on n0.
const (
	exceptInRoom = 4
	exceptOfUser = 0
)

// broadcasts covers every kind of broadcast, published from every node,
// including "except sender" with the sender on another node than the
// publisher.
func broadcasts(nodes int) []broadcastCase {
	last := nodes - 1
	return []broadcastCase{
		{"room.red", 0, func(ctx context.Context, h *hub.Hub, _ []*client) error {
			return h.Broadcast(ctx, "room:red", "room.red", map[string]int{"n": 1})
		}, in("room:red"), "room:red"},
		{"room.blue", last, func(ctx context.Context, h *hub.Hub, _ []*client) error {
			return h.Broadcast(ctx, "room:blue", "room.blue", nil)
		}, in("room:blue"), "room:blue"},
		{"user.u1", 1, func(ctx context.Context, h *hub.Hub, _ []*client) error {
			return h.ToUser(ctx, "u1", "user.u1", "hi")
		}, user("u1"), ""},
		{"tenant.t1", last, func(ctx context.Context, h *hub.Hub, _ []*client) error {
			return h.ToTenant(ctx, "t1", "tenant.t1", nil)
		}, func(s connSpec, _ int) bool { return s.id.tenant == "t1" }, ""},
		{"tenant.t2", 0, func(ctx context.Context, h *hub.Hub, _ []*client) error {
			return h.ToTenant(ctx, "t2", "tenant.t2", nil)
		}, func(s connSpec, _ int) bool { return s.id.tenant == "t2" }, ""},
		{"global", 1, func(ctx context.Context, h *hub.Hub, _ []*client) error {
			return h.Broadcast(ctx, "global", "global", nil)
		}, func(s connSpec, _ int) bool { return slices.Contains(s.id.roles, superAdmin) }, "global"},
		{"all", 0, func(ctx context.Context, h *hub.Hub, _ []*client) error {
			return h.ToAll(ctx, "all", nil)
		}, func(connSpec, int) bool { return true }, ""},
		{"except.room", 0, func(ctx context.Context, h *hub.Hub, cs []*client) error {
			return h.Broadcast(ctx, "room:red", "except.room", nil, hub.Except(cs[exceptInRoom].connID))
		}, func(s connSpec, i int) bool { return in("room:red")(s, i) && i != exceptInRoom }, "room:red"},
		{"except.user", 1, func(ctx context.Context, h *hub.Hub, cs []*client) error {
			return h.ToUser(ctx, "u1", "except.user", nil, hub.Except(cs[exceptOfUser].connID))
		}, func(s connSpec, i int) bool { return s.id.user == "u1" && i != exceptOfUser }, ""},
	}
}

// TestBroadcastsReachEveryNodeOnce publishes every kind of broadcast on two
// and three nodes sharing one Redis and counts, per connection, what
// arrived before a final marker. The broadcasts are published one after
// the other (each call returns once Redis has it), and every node hears
// them in Redis's order over its one pub/sub connection, so whatever a
// connection has not received by the marker, duplicates included, never
// comes.
func TestBroadcastsReachEveryNodeOnce(t *testing.T) {
	srv := redistest.Start(t)
	for _, n := range []int{2, 3} {
		t.Run(strconv.Itoa(n)+"_nodes", func(t *testing.T) {
			nodes := startNodes(t, n, redis.Options{Addrs: []string{srv.Addr()}, Prefix: fmt.Sprintf("bc%d:", n)})
			specs := scenario(n)
			conns := make([]*client, len(specs))
			for i, s := range specs {
				conns[i] = connect(t, nodes[s.node].srv.URL, nodes[s.node].name, s.id, s.rooms...)
			}
			cases := broadcasts(n)
			ctx := t.Context()
			for _, bc := range cases {
				if err := bc.send(ctx, nodes[bc.from].hub, conns); err != nil {
					t.Fatalf("%s from %s: %v", bc.event, nodes[bc.from].name, err)
				}
			}
			if err := nodes[n-1].hub.ToAll(ctx, "marker", nil); err != nil {
				t.Fatal(err)
			}
			for i, c := range conns {
				before, _ := c.take("the marker", isEvent("marker"))
				checkReceived(t, c, specs[i], i, before, cases)
			}

			// DisconnectUser from n0 closes u1's connections on every node
			// and nobody else's.
			if err := nodes[0].hub.DisconnectUser(ctx, "u1", "logout"); err != nil {
				t.Fatal(err)
			}
			for i, c := range conns {
				if specs[i].id.user != u1.user {
					continue
				}
				code, frames := c.waitClosed()
				if code != websocket.StatusCode(hub.CloseUnauthorized) || !slices.ContainsFunc(frames, func(f frame) bool {
					return f.Type == "bye" && strings.Contains(string(f.Data), "logout")
				}) {
					t.Errorf("%s: closed with %v after %+v, want bye logout and 4001", c, code, frames)
				}
			}
			if err := nodes[1].hub.ToAll(ctx, "marker2", nil); err != nil {
				t.Fatal(err)
			}
			for i, c := range conns {
				if specs[i].id.user == u1.user {
					continue
				}
				if before, _ := c.take("the second marker", isEvent("marker2")); len(before) != 0 {
					t.Errorf("%s received %+v after the first marker", c, before)
				}
			}
		})
	}
}

// checkReceived compares what connection i received with the cases.
func checkReceived(t *testing.T, c *client, spec connSpec, i int, got []frame, cases []broadcastCase) {
	t.Helper()
	counts := make(map[string]int)
	rooms := make(map[string]string)
	for _, f := range got {
		if f.Type != "event" {
			t.Errorf("%s (conn %d) received a %s frame: %+v", c, i, f.Type, f)
			continue
		}
		counts[f.Event]++
		rooms[f.Event] = f.Room
	}
	for _, bc := range cases {
		want := 0
		if bc.to(spec, i) {
			want = 1
		}
		if counts[bc.event] != want {
			t.Errorf("%s (conn %d): %s arrived %d times, want %d", c, i, bc.event, counts[bc.event], want)
		} else if want == 1 && rooms[bc.event] != bc.room {
			t.Errorf("%s (conn %d): %s in room %q, want %q", c, i, bc.event, rooms[bc.event], bc.room)
		}
		delete(counts, bc.event)
	}
	for ev, n := range counts {
		t.Errorf("%s (conn %d): unexpected %s ×%d", c, i, ev, n)
	}
}

// TestRedisClusterCarriesRoomsOnEveryMaster runs two hubs on a three-master
// Redis Cluster with sharded pub/sub and broadcasts to rooms whose
// channels live on different masters.
func TestRedisClusterCarriesRoomsOnEveryMaster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	opts := redis.Options{Addrs: cl.Addrs(), Cluster: true}
	a, b := startNode(t, "a", opts, nil), startNode(t, "b", opts, nil)

	owner := slotOwners(t, cl)
	rooms := make(map[string]string) // master address → room whose channel it owns
	var order []string
	for i := 0; len(rooms) < len(cl.Servers()) && i < 1000; i++ {
		name := "room:s" + strconv.Itoa(i)
		addr := owner(keySlot(t, cl.Servers()[0], channelOf(name)))
		if _, ok := rooms[addr]; !ok {
			rooms[addr] = name
			order = append(order, name)
		}
	}
	if len(rooms) != len(cl.Servers()) {
		t.Fatalf("found rooms on %d masters only: %v", len(rooms), rooms)
	}

	type member struct {
		c    *client
		room string
	}
	var members []member
	all := connect(t, a.srv.URL, "a", identity{user: "watcher"}, order...)
	for i, r := range order {
		members = append(members,
			member{connect(t, a.srv.URL, "a", identity{user: "a" + strconv.Itoa(i)}, r), r},
			member{connect(t, b.srv.URL, "b", identity{user: "b" + strconv.Itoa(i)}, r), r},
			member{all, r})
	}
	// Each channel is subscribed on the master that owns it, and only there.
	for _, s := range cl.Servers() {
		got, err := s.Do("PUBSUB", "SHARDCHANNELS", redis.DefaultPrefix+"room:room:*")
		if err != nil {
			t.Fatal(err)
		}
		want := rooms[s.Addr()]
		if chans := strings.Fields(got); len(chans) != 1 || chans[0] != channelOf(want) {
			t.Errorf("master %s carries %q, want only %s", s.Addr(), got, channelOf(want))
		}
	}

	ctx := t.Context()
	for _, r := range order {
		for _, n := range []*node{a, b} {
			if err := n.hub.Broadcast(ctx, r, "from."+n.name, r); err != nil {
				t.Fatalf("broadcast to %s from %s: %v", r, n.name, err)
			}
		}
		// The marker shares the room's channel, hence its shard and order.
		if err := b.hub.Broadcast(ctx, r, "marker", r); err != nil {
			t.Fatal(err)
		}
	}
	// Channels on different shards keep no order between them, so the
	// watcher may hear one room's marker before another room's messages;
	// within a room, everything precedes its marker.
	for _, m := range members {
		frames := m.c.waitSeen("the marker of "+m.room, func(f frame) bool { return f.Event == "marker" && f.Room == m.room })
		got := map[string]int{}
		for _, f := range frames {
			switch {
			case f.Type != "event":
			case f.Room == m.room:
				got[f.Event]++
			case m.c != all:
				t.Errorf("%s received %s for %s", m.c, f.Event, f.Room)
			}
		}
		if got["from.a"] != 1 || got["from.b"] != 1 || got["marker"] != 1 || len(got) != 3 {
			t.Errorf("%s in %s received %v, want from.a, from.b and the marker once each", m.c, m.room, got)
		}
	}
}

// channelOf is the Redis channel of a room with the default prefix: the
// hub's topic "room:<name>" behind the broker's prefix.
func channelOf(roomName string) string { return redis.DefaultPrefix + "room:" + roomName }

// keySlot asks Redis for the cluster slot of key.
func keySlot(t *testing.T, s *redistest.Server, key string) int {
	t.Helper()
	reply, err := s.Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := strconv.Atoi(reply)
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s = %q", key, reply)
	}
	return slot
}

// slotOwners reads CLUSTER NODES and returns the address of the master
// owning a slot.
func slotOwners(t *testing.T, cl *redistest.Cluster) func(slot int) string {
	t.Helper()
	nodes, err := cl.Servers()[0].Do("CLUSTER", "NODES")
	if err != nil {
		t.Fatal(err)
	}
	type span struct {
		from, to int
		addr     string
	}
	var spans []span
	for line := range strings.SplitSeq(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, found := strings.Cut(r, "-")
			from, err1 := strconv.Atoi(lo)
			to, err2 := from, error(nil)
			if found {
				to, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				t.Fatalf("CLUSTER NODES slot range %q", r)
			}
			spans = append(spans, span{from, to, addr})
		}
	}
	return func(slot int) string {
		for _, s := range spans {
			if slot >= s.from && slot <= s.to {
				return s.addr
			}
		}
		t.Fatalf("slot %d has no owner in %q", slot, nodes)
		return ""
	}
}
