package redis_test

import (
	"log"
	"net/http"

	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
)

// Every node of a cluster runs the same code: the per-user connection
// limit and room presence then span all of them.
func ExampleNewLimiter() {
	addrs := []string{redisAddr}
	limiter, err := redis.NewLimiter(redis.LimiterOptions{Addrs: addrs, PerUser: 5})
	if err != nil {
		log.Fatal(err)
	}
	defer limiter.Close()
	presence, err := redis.NewPresence(redis.PresenceOptions{Addrs: addrs})
	if err != nil {
		log.Fatal(err)
	}
	defer presence.Close()
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: []byte("a secret of at least thirty-two bytes")})
	if err != nil {
		log.Fatal(err)
	}
	h, err := hub.New(hub.Options{
		Authenticator: authn,
		Admit:         limiter.Admit, // 429 before the upgrade, on any node
		Presence:      presence,      // h.Presence(ctx, room) lists every node's users
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/ws", h)
}

// The handshake throttle counts a client's attempts on every node, keyed
// by the address guard resolves through trusted proxies.
func ExampleThrottle_Middleware() {
	local, err := guard.NewThrottle(guard.ThrottleOptions{})
	if err != nil {
		log.Fatal(err)
	}
	shared, err := redis.NewThrottle(redis.ThrottleOptions{
		Addrs:    []string{redisAddr},
		Attempts: 10,
		Key:      func(r *http.Request) string { return local.ClientIP(r).String() },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer shared.Close()
	h := http.NotFoundHandler() // the hub, in a real server
	http.Handle("/ws", guard.Chain(h, shared.Middleware))
}
