package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// CheckStore reads the configuration of every Redis the broker writes to
// (each master, in a cluster) and returns, one sentence each prefixed with
// the server's address, the settings
// under which streams and idempotency keys can lose what the broker
// promises, so that an operator sees them at startup and in readiness
// output. New logs them once, at Warn. An error means a configuration
// could not be read (managed services often disable CONFIG); the warnings
// of the other servers are still returned.
//
// It warns when
//   - maxmemory is set and maxmemory-policy is not noeviction: every key
//     the broker writes has a TTL, so volatile-* policies may evict them as
//     well as allkeys-*;
//   - there is no persistence: a restart loses every idempotency key;
//   - persistence is RDB snapshots or an AOF not fsynced on every write: a
//     crash can lose the idempotency keys of its last second;
//   - the master has replicas: replication is asynchronous, and a failover
//     can do the same.
//
// Streams start a new epoch after any restart or failover whatever the
// persistence (see the package documentation), so persistence does not
// make recovery survive one; it keeps idempotency keys.
func (b *Broker) CheckStore(ctx context.Context) ([]string, error) {
	if b.closed.Load() {
		return nil, errors.New("redis: broker closed")
	}
	b.mu.RLock()
	addrs := make([]string, 0, len(b.route.shards))
	for _, s := range b.route.shards {
		addrs = append(addrs, s.addr)
	}
	b.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	var warnings []string
	var errs []error
	for _, addr := range addrs {
		name := addr
		if name == "" {
			name = b.opts.Addrs[0]
		}
		c, err := b.nodeClient(addr)
		var cfg map[string]string
		if err == nil {
			cfg, err = readStoreConfig(ctx, c)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("redis: check %s: %w", name, err))
			continue
		}
		for _, w := range storeRisks(cfg) {
			warnings = append(warnings, name+": "+w)
		}
	}
	return warnings, errors.Join(errs...)
}

// readStoreConfig returns the settings storeRisks reads, and "role" and
// "connected_slaves" from INFO replication.
func readStoreConfig(ctx context.Context, c rueidis.Client) (map[string]string, error) {
	params := []string{"maxmemory", "maxmemory-policy", "appendonly", "appendfsync", "save"}
	cmds := make(rueidis.Commands, 0, len(params)+1)
	for _, p := range params {
		// One parameter per CONFIG GET: Redis 6 takes no more.
		cmds = append(cmds, c.B().ConfigGet().Parameter(p).Build())
	}
	cmds = append(cmds, c.B().Info().Section("replication").Build())
	res := c.DoMulti(ctx, cmds...)
	cfg := map[string]string{}
	for i, p := range params {
		m, err := res[i].AsStrMap()
		if err != nil {
			return nil, fmt.Errorf("CONFIG GET %s: %w", p, err)
		}
		v, ok := m[p]
		if !ok {
			return nil, fmt.Errorf("CONFIG GET %s: no value", p)
		}
		cfg[p] = v
	}
	info, err := res[len(params)].ToString()
	if err != nil {
		return nil, fmt.Errorf("INFO replication: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "role" || k == "connected_slaves" {
			cfg[k] = v
		}
	}
	return cfg, nil
}

// storeRisks turns a server's settings into warnings; see CheckStore.
func storeRisks(cfg map[string]string) []string {
	var out []string
	if cfg["maxmemory"] != "0" && cfg["maxmemory-policy"] != "noeviction" {
		out = append(out, "maxmemory-policy "+cfg["maxmemory-policy"]+" may evict stream, position and idempotency keys (all have a TTL): "+
			"an evicted position starts a new epoch and no client recovers across it, and an evicted idempotency key lets a retry be delivered twice; use noeviction")
	}
	aof, rdb := cfg["appendonly"] == "yes", strings.TrimSpace(cfg["save"]) != ""
	switch {
	case !aof && !rdb:
		out = append(out, "no persistence (appendonly no, save \"\"): a restart loses every idempotency key, so a publish retried across it "+
			"may be delivered twice (every topic starts a new epoch after any restart, so no client recovers across one)")
	case !aof || cfg["appendfsync"] != "always":
		out = append(out, "persistence ("+persistence(cfg)+") can lose the last writes in a crash: an idempotency key written then is lost, "+
			"so a retry may be delivered twice (offsets cannot go back: the restarted server starts a new epoch for every topic)")
	}
	if n, _ := strconv.Atoi(cfg["connected_slaves"]); n > 0 && cfg["role"] == "master" {
		out = append(out, strconv.Itoa(n)+" asynchronous replicas: a failover can lose the last writes (idempotency keys, the newest history), "+
			"and every topic of the promoted replica starts a new epoch, so no client recovers across it")
	}
	return out
}

func persistence(cfg map[string]string) string {
	if cfg["appendonly"] == "yes" {
		return "AOF, appendfsync " + cfg["appendfsync"]
	}
	return "RDB snapshots only, save " + strconv.Quote(cfg["save"])
}

// logStoreRisks logs CheckStore's findings once.
func (b *Broker) logStoreRisks() {
	warnings, err := b.CheckStore(context.Background())
	for _, w := range warnings {
		b.log.Warn("redis_store_risk", slog.String("risk", w))
	}
	if err != nil {
		b.log.Warn("redis_store_unchecked", slog.String("error", err.Error()))
	}
}
