// Package adversarial replays attacks against real wsgate servers over
// loopback, so that every hole found once stays closed. Its tests are the
// suite; this package is the small harness they share.
//
// Each attack class has a test file. Before the upgrade: JWT forgeries
// (jwt_test.go), origin tricks (origin_test.go), DNS rebinding against the
// hub's default origin check and malformed keys (handshake_test.go),
// throttle spoofing through X-Forwarded-For (throttle_test.go), slowloris
// (slowloris_test.go). On the socket: floods and deflate bombs
// (flood_test.go), RFC 6455 frame violations (frames_test.go). In the
// protocol: ambiguous envelopes (envelope_test.go), pipelining around
// first-message authentication (firstauth_test.go), handlers that ignore
// their deadline (handlers_test.go), clients that never answer the close
// at shutdown (shutdown_test.go). Rooms and identities: tenant escapes and look-alike
// ids (tenant_test.go), escaping oneself by leaving one's rooms and
// refreshes that hope to keep what the new token does not grant
// (escape_test.go). Between nodes: Redis forgery and replay
// (redis_test.go). Attacks on the examples' own surfaces, such as
// cross-tenant requests to the notifications publish API, live beside the
// examples, in their adversarial_test.go. Every test is bounded in count
// and time; the whole package runs in a few seconds.
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
// DialRaw and ConnectRaw speak WebSocket byte by byte, for what a client
// library refuses to send (unmasked frames, reserved bits, floods of
// control frames, another Host header); RawConn's Expect helpers read the
// server's frames as they come:
//
//	c := srv.ConnectRaw(t, adversarial.Token(t, nil))
//	c.SendUnmasked(adversarial.FIN|adversarial.OpText, []byte(`{}`))
//	_ = c.Flush()
//	closeFrame, _ := c.ExpectClose(1002)
//	c.AnswerClose(closeFrame)
//	c.ExpectEnd()
//
// Raw opens a plain TCP connection for attacks below HTTP (a slow or
// malformed request line). A new attack is a new test function, or a row in
// the table of an existing one, using these helpers.
package adversarial
