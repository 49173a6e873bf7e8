// Package gateway says the wiring of a guarded hub once: one options
// struct with the authenticator, the allowed origins, the handshake
// throttle, the connection limits, the logger, the metrics and the hub's
// own options, from which New builds the guards and the hub, each given
// what it shares with the others.
//
// Without it the origins go to the guard and to the hub's CheckOrigin, and
// the logger and the observer to every constructor; with it they are said
// once, and saying one of them again inside the pieces' options is an
// error. The pieces stay usable alone (guard, hub, metrics), and the
// Gateway hands each of them out.
//
// The smallest use:
//
//	reg := prometheus.NewRegistry()
//	g, err := gateway.New(gateway.Options{
//		JWT:      &auth.JWTOptions{JWKSURL: "https://id.example.com/.well-known/jwks.json"},
//		Origins:  []string{"https://app.example.com"},
//		Logger:   logger,
//		Registry: reg,
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	hub.Handle(g.Hub(), "message:send", send)
//	mux.Handle("GET /ws", g)
//	mux.Handle("GET /healthz", g.LivenessHandler())
//	mux.Handle("GET /readyz", g.ReadinessHandler())
//	...
//	err = g.Shutdown(ctx) // bye and 1012 to every client, then the JWKS refresh stops
//
// Several nodes on Redis: put the broker, the presence store and the
// cluster-wide per-user limit (adapter/redis Limiter.Admit) in Hub, and,
// for a handshake throttle shared by every node, wrap the gateway in the
// Redis throttle's middleware: guard.Chain(g, redisThrottle.Middleware).
package gateway
