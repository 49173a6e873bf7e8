package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterTimeout bounds cluster creation and convergence.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster of masters without replicas, owned by a test.
type Cluster struct {
	servers []*Server
}

// StartCluster starts masters cluster-mode servers on free ports, joins them
// with `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok and knows every other node. The servers are stopped by
// t.Cleanup.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", masters)
	}
	cli := lookPath(t, "redis-cli")
	c := &Cluster{}
	for range masters {
		// cluster-port pins the bus port to a second free port rather
		// than port+10000, which may be taken or out of range.
		busPort, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		c.servers = append(c.servers, start(t, config{}, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
			"--cluster-port", strconv.Itoa(busPort),
		}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitOK(masters); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return c
}

// waitOK polls CLUSTER INFO on every node until all agree the cluster is
// usable; redis-cli returns once slots are assigned, before gossip settles.
func (c *Cluster) waitOK(masters int) error {
	deadline := time.Now().Add(clusterTimeout)
	want := "cluster_known_nodes:" + strconv.Itoa(masters)
	for {
		var last string
		ok := true
		for _, s := range c.servers {
			info, err := s.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) {
				ok, last = false, fmt.Sprintf("%s: %v %q", s.Addr(), err, info)
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ok within %s: %s", clusterTimeout, last)
		}
		time.Sleep(20 * time.Millisecond) // poll interval; the deadline bounds it
	}
}

// Addrs returns the masters' host:port addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Servers returns the masters, for killing or inspecting one node.
func (c *Cluster) Servers() []*Server { return c.servers }
