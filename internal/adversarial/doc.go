// Package adversarial replays attacks against real wsgate servers over
// loopback, so that every hole found once stays closed. Its tests are the
// suite; this package is the small harness they share.
//
// Each attack class has a test file: JWT forgeries (jwt_test.go), origin
// tricks (origin_test.go), throttle spoofing through X-Forwarded-For
// (throttle_test.go), slowloris (slowloris_test.go), tenant escapes
// (tenant_test.go) and Redis forgery and replay (redis_test.go). Attacks on
// the examples' own surfaces, such as cross-tenant requests to the
// notifications publish API, live beside the examples, in their
// adversarial_test.go. Every test is bounded in count and time; the whole
// package runs in a few seconds.
//
// # The harness
//
// Start builds a server the way a service embeds wsgate: hub.New with an
// auth.JWT authenticator and a default-deny room policy, behind guard's
// throttle, origin allowlist and connection limits, served by an
// http.Server with a ReadHeaderTimeout on 127.0.0.1:0. Config changes what
// an attack needs and nothing else:
//
//	srv := adversarial.Start(t, adversarial.Config{})
//
// Handshakes are attempts that may fail; Expect* helpers check the outcome:
//
//	_, resp, err := srv.Dial(t, adversarial.Handshake{Token: forged})
//	adversarial.ExpectRefusal(t, resp, err, http.StatusUnauthorized, "UNAUTHORIZED")
//
//	c := srv.Connect(t, srv.Token(t, jwt.MapClaims{"sub": "mallory"}))
//	f := c.Call(map[string]any{"type": "join", "room": "tenant:other"})
//	adversarial.ExpectError(t, f, "FORBIDDEN")
//
// Raw opens a plain TCP connection for attacks below HTTP (a slow or
// malformed request line). A new attack is a new test function, or a row in
// the table of an existing one, using these helpers.
package adversarial
