package redistest

import (
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	t.Run("answers_ping_on_a_loopback_port_other_than_6379", func(t *testing.T) {
		s := Start(t)
		if s.Port() == 6379 || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
			t.Fatalf("addr %s", s.Addr())
		}
		if got, err := s.Do("PING"); err != nil || got != "PONG" {
			t.Fatalf("PING = %q, %v", got, err)
		}
	})
	t.Run("persistence_is_off", func(t *testing.T) {
		s := Start(t)
		for _, kv := range [][2]string{{"save", ""}, {"appendonly", "no"}} {
			got, err := s.Do("CONFIG", "GET", kv[0])
			if want := kv[0] + "\n" + kv[1]; err != nil || got != want {
				t.Fatalf("CONFIG GET %s = %q, %v; want %q", kv[0], got, err, want)
			}
		}
		info, err := s.Do("INFO", "persistence")
		if err != nil || !strings.Contains(info, "aof_enabled:0") {
			t.Fatalf("INFO persistence: %v %q", err, info)
		}
	})
	t.Run("kill_then_restart_keeps_the_port", func(t *testing.T) {
		s := Start(t)
		port := s.Port()
		s.Kill()
		if _, err := s.Do("PING"); err == nil {
			t.Fatal("PING answered after Kill")
		}
		s.Restart()
		if s.Port() != port {
			t.Fatalf("port %d, want %d", s.Port(), port)
		}
		if got, err := s.Do("PING"); err != nil || got != "PONG" {
			t.Fatalf("PING after restart = %q, %v", got, err)
		}
	})
	t.Run("password_is_required_when_set", func(t *testing.T) {
		s := Start(t, WithPassword("s3cret"))
		if got, err := s.Do("PING"); err != nil || got != "PONG" {
			t.Fatalf("PING with password = %q, %v", got, err)
		}
		anon := &Server{port: s.port}
		if _, err := anon.Do("PING"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("PING without password: %v", err)
		}
	})
	t.Run("stop_is_idempotent", func(t *testing.T) {
		s := Start(t)
		s.Stop()
		s.Stop()
		if _, err := s.Do("PING"); err == nil {
			t.Fatal("PING answered after Stop")
		}
	})
}

func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Addrs()) != 3 {
		t.Fatalf("addrs %v", c.Addrs())
	}
	for _, s := range c.Servers() {
		info, err := s.Do("CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_assigned:16384") {
			t.Fatalf("%s: %v %q", s.Addr(), err, info)
		}
	}
}

func TestStartClusterWithReplicas(t *testing.T) {
	c := StartClusterWith(t, ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	if len(c.Servers()) != 6 {
		t.Fatalf("%d servers, want 6", len(c.Servers()))
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}
	for _, m := range masters {
		if c.ReplicaOf(m) == nil {
			t.Fatalf("master %s has no replica", m.Addr())
		}
	}
	// Killing a master by PID promotes its replica.
	victim := masters[0]
	replica := c.ReplicaOf(victim)
	victim.Kill()
	deadline := time.Now().Add(clusterTimeout)
	for {
		role, err := Role(replica)
		if err == nil && role == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s still %q (%v) %s after its master was killed", replica.Addr(), role, err, clusterTimeout)
		}
		time.Sleep(50 * time.Millisecond) // poll interval; the deadline bounds it
	}
	if n := len(c.Masters()); n != 3 {
		t.Fatalf("%d masters after the failover, want 3", n)
	}
}
