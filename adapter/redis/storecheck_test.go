package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
)

func TestCheckStore(t *testing.T) {
	const (
		evicts  = "maxmemory-policy"
		nothing = "no persistence"
		crash   = "can lose the last writes in a crash"
	)
	durable := []string{"--appendonly", "yes", "--appendfsync", "always"}
	tests := []struct {
		name string
		args []string
		want []string // a distinctive part of each warning, in order
	}{
		{"no_persistence_is_a_risk", nil, []string{nothing}},
		{"an_aof_fsynced_on_every_write_without_maxmemory_is_none", durable, nil},
		{"noeviction_is_no_risk", append([]string{"--maxmemory", "100mb", "--maxmemory-policy", "noeviction"}, durable...), nil},
		{"allkeys_lru_may_evict", append([]string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}, durable...), []string{evicts}},
		{"volatile_lru_may_evict_too_since_every_key_has_a_ttl", append([]string{"--maxmemory", "100mb", "--maxmemory-policy", "volatile-lru"}, durable...), []string{evicts}},
		{"rdb_snapshots_may_lose_the_last_keys", []string{"--save", "3600 1"}, []string{crash}},
		{"an_aof_fsynced_every_second_may_lose_the_last_keys", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, []string{crash}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.WithArgs(tt.args...))
			b, _ := node(t, Options{Addrs: []string{srv.Addr()}})
			got, err := b.CheckStore(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Fatalf("warning %d is %q, want one about %q", i, got[i], w)
				}
			}
		})
	}
	t.Run("a_master_with_a_replica_may_lose_writes_in_a_failover", func(t *testing.T) {
		master := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
		redistest.Start(t, redistest.WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(master.Port())))
		b, _ := node(t, Options{Addrs: []string{master.Addr()}})
		eventually(t, "the replica to be reported", func() error {
			got, err := b.CheckStore(context.Background())
			if err != nil {
				return err
			}
			if len(got) != 1 || !strings.Contains(got[0], "1 asynchronous replicas") {
				return fmt.Errorf("warnings %q", got)
			}
			return nil
		})
	})
	t.Run("a_server_that_refuses_CONFIG_is_an_error", func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithArgs("--rename-command", "CONFIG", ""))
		b, _ := node(t, Options{Addrs: []string{srv.Addr()}})
		if got, err := b.CheckStore(context.Background()); err == nil || !strings.Contains(err.Error(), srv.Addr()) || len(got) != 0 {
			t.Fatalf("CheckStore = %q, %v; want an error naming %s", got, err, srv.Addr())
		}
	})
	t.Run("every_master_of_a_cluster_is_checked", func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		b, _ := node(t, Options{Addrs: c.Addrs()})
		got, err := b.CheckStore(context.Background())
		if err != nil || len(got) != 3 {
			t.Fatalf("CheckStore = %q, %v; want the no-persistence warning of each master", got, err)
		}
	})
}
