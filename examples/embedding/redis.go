package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/redis/rueidis"

	wsredis "github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/guard"
)

// redisBackend is what makes several nodes one service: the broker
// (pub/sub connections of its own) and, on one rueidis client shared by
// them, the cluster-wide per-user limit, presence and handshake throttle.
type redisBackend struct {
	client   rueidis.Client
	broker   *wsredis.Broker
	limiter  *wsredis.Limiter
	presence *wsredis.Presence
	throttle *wsredis.Throttle
}

func newRedisBackend(addr string, key []byte, log *slog.Logger) (_ *redisBackend, err error) {
	if len(key) == 0 {
		return nil, errors.New("embedding: a Redis HMAC key is required with Redis")
	}
	rb := &redisBackend{}
	defer func() {
		if err != nil {
			rb.close()
		}
	}()
	if rb.client, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true}); err != nil {
		return nil, fmt.Errorf("embedding: redis: %w", err)
	}
	if rb.broker, err = wsredis.New(wsredis.Options{Addrs: []string{addr}, HMACKey: key, Logger: log}); err != nil {
		return nil, fmt.Errorf("embedding: %w", err)
	}
	if rb.limiter, err = wsredis.NewLimiter(wsredis.LimiterOptions{Client: rb.client, Logger: log}); err != nil {
		return nil, fmt.Errorf("embedding: %w", err)
	}
	if rb.presence, err = wsredis.NewPresence(wsredis.PresenceOptions{Client: rb.client, Logger: log}); err != nil {
		return nil, fmt.Errorf("embedding: %w", err)
	}
	return rb, nil
}

// newThrottle builds the handshake throttle every node shares, counting
// the client address the gateway's throttle resolves (trusted proxies
// included) and reporting to the gateway's metrics.
func (rb *redisBackend) newThrottle(opts guard.ThrottleOptions, g *gateway.Gateway) (*wsredis.Throttle, error) {
	t, err := wsredis.NewThrottle(wsredis.ThrottleOptions{
		Client:   rb.client,
		Attempts: opts.Attempts, Window: opts.Window, Burst: opts.Burst,
		Key:      func(r *http.Request) string { return g.Throttle().ClientIP(r).String() },
		Observer: g.Metrics(),
	})
	if err != nil {
		return nil, fmt.Errorf("embedding: %w", err)
	}
	rb.throttle = t
	return t, nil
}

// close releases the Redis parts, the shared client last; the hub has
// been shut down.
func (rb *redisBackend) close() {
	if rb.throttle != nil {
		_ = rb.throttle.Close()
	}
	if rb.presence != nil {
		_ = rb.presence.Close()
	}
	if rb.limiter != nil {
		_ = rb.limiter.Close()
	}
	if rb.broker != nil {
		_ = rb.broker.Close()
	}
	if rb.client != nil {
		rb.client.Close()
	}
}
