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

// ClusterOptions configures StartClusterWith.
type ClusterOptions struct {
	// Masters is the number of masters; a Redis Cluster needs at least 3.
	Masters int
	// Replicas is the number of replicas of each master (redis-cli's
	// --cluster-replicas). Default 0.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may be
	// unreachable before it is considered failing, which with replicas is
	// the larger part of a failover. Default 5s.
	NodeTimeout time.Duration
}

// Cluster is a Redis Cluster owned by a test: masters, and replicas when
// asked for.
type Cluster struct {
	servers []*Server
}

// StartCluster starts masters cluster-mode servers without replicas. See
// StartClusterWith.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Masters: masters})
}

// StartClusterWith starts o.Masters × (1 + o.Replicas) cluster-mode servers
// on free ports, joins them with `redis-cli --cluster create`, and waits
// until every node reports cluster_state:ok and knows every other node,
// and every replica is in sync with its master. The servers are stopped by
// t.Cleanup.
func StartClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Masters < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", o.Masters)
	}
	if o.Replicas < 0 {
		t.Fatalf("redistest: %d replicas per master", o.Replicas)
	}
	timeout := o.NodeTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	cli := lookPath(t, "redis-cli")
	c := &Cluster{}
	for range o.Masters * (1 + o.Replicas) {
		// cluster-port pins the bus port to a second free port rather
		// than port+10000, which may be taken or out of range.
		busPort, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		c.servers = append(c.servers, start(t, config{}, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(timeout.Milliseconds(), 10),
			"--cluster-port", strconv.Itoa(busPort),
		}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(o.Replicas), "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitOK(len(c.servers)); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	if err := c.waitReplicasInSync(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return c
}

// waitOK polls CLUSTER INFO on every node until all agree the cluster is
// usable; redis-cli returns once slots are assigned, before gossip settles.
func (c *Cluster) waitOK(nodes int) error {
	deadline := time.Now().Add(clusterTimeout)
	want := "cluster_known_nodes:" + strconv.Itoa(nodes)
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

// waitReplicasInSync polls INFO replication until every replica's link to
// its master is up, so that a failover has a replica to promote.
func (c *Cluster) waitReplicasInSync() error {
	deadline := time.Now().Add(clusterTimeout)
	for {
		var last string
		ok := true
		for _, s := range c.servers {
			info, err := s.Do("INFO", "replication")
			if err != nil || (strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up")) {
				ok, last = false, fmt.Sprintf("%s: %v %q", s.Addr(), err, info)
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas not in sync within %s: %s", clusterTimeout, last)
		}
		time.Sleep(20 * time.Millisecond) // poll interval; the deadline bounds it
	}
}

// Addrs returns every node's host:port address, masters and replicas.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Servers returns every node, masters and replicas, for killing or
// inspecting one.
func (c *Cluster) Servers() []*Server { return c.servers }

// Role returns "master" or "slave" (a replica), as s reports it now.
func Role(s *Server) (string, error) {
	info, err := s.Do("INFO", "replication")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if role, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return role, nil
		}
	}
	return "", fmt.Errorf("no role in INFO replication of %s", s.Addr())
}

// Masters returns the nodes that are masters now; a node that does not
// answer is left out.
func (c *Cluster) Masters() []*Server {
	var out []*Server
	for _, s := range c.servers {
		if role, err := Role(s); err == nil && role == "master" {
			out = append(out, s)
		}
	}
	return out
}

// ReplicaOf returns a replica of master, as the replicas report it now, or
// nil.
func (c *Cluster) ReplicaOf(master *Server) *Server {
	want := "master_port:" + strconv.Itoa(master.Port())
	for _, s := range c.servers {
		info, err := s.Do("INFO", "replication")
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, want+"\r") {
			return s
		}
	}
	return nil
}
