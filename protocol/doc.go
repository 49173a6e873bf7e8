// Package protocol holds the names and numbers of the wsgate.v1 wire
// protocol that servers and clients share: the subprotocol, the envelope
// types, the error codes of error frames and HTTP refusals, the close codes
// and what a client should do after each, and the JSON refusal a server
// answers a handshake with before the upgrade.
//
// It depends on the standard library only, so a client (or a custom
// admission hook) can speak the protocol without pulling in the server.
// docs/PROTOCOL.md describes the protocol in full.
//
// A custom admission check answers with a Refusal of its own choosing:
//
//	if !plan.AllowsRealtime() {
//		return nil, &protocol.Refusal{
//			Status:  http.StatusForbidden,
//			Code:    protocol.CodeForbidden,
//			Message: "your plan does not include live updates",
//		}
//	}
//
// and anything that refuses a request before the upgrade writes one:
//
//	(&protocol.Refusal{Status: 503, Code: protocol.CodeUnavailable,
//		Message: "maintenance", RetryAfter: time.Minute}).Write(w)
package protocol
