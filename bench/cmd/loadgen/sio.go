package main

import (
	"bytes"
	"fmt"
)

// The Socket.IO contenders (socketio-node, wsgate-socketio) are spoken to
// in Socket.IO v5 over Engine.IO v4's WebSocket transport, as
// socket.io-client does with transports: ["websocket"]:
//
//	GET /socket.io/?EIO=4&transport=websocket     the upgrade
//	← 0{"sid":…,"pingInterval":…}                 Engine.IO open
//	→ 40{"token":"<jwt>"}                         CONNECT to "/" with the auth payload
//	← 40{"sid":…}                                 connected: setup ends here
//	← 2   → 3                                     Engine.IO ping, pong
//	← 42["bench",{"bts":…,"seq":…,"pad":…}]       a broadcast; with connection state
//	                                              recovery a last argument follows, the
//	                                              offset: …},"g1a.0-5-abcd"]
//	→ 42N["echo",{"ets":…}]   ← 43N[{"ets":…}]    a request and its ack
//
// A CONNECT_ERROR (44), a DISCONNECT of "/" (41) or an Engine.IO close (1)
// ends the connection. Binary packets are not used.

var sioDialect = &dialect{
	path:      "/socket.io/?EIO=4&transport=websocket",
	sio:       true,
	waitFirst: true,
	hello: func(tok string) []byte {
		return fmt.Appendf(nil, `40{"token":%q}`, tok)
	},
	echo: func(id uint64, ts int64) []byte {
		return fmt.Appendf(nil, `42%d["echo",{"ets":%d}]`, id, ts)
	},
}

var (
	eioPong    = []byte("3")
	benchEvent = []byte(`["bench",`)
)

// onSIO handles one Engine.IO packet (a WebSocket message) and reports
// false when the connection is over. Only the owner of the parse state
// calls it (see consume).
func (c *client) onSIO(p []byte, now int64) bool {
	if len(p) == 0 {
		return true
	}
	switch p[0] {
	case '0': // open: connect to the namespace "/"
		if c.write(opText, c.hello) != nil {
			c.why = "could not send the CONNECT"
			return false
		}
		return true
	case '2': // ping
		if c.write(opText, eioPong) != nil {
			return false
		}
		c.pongs.Add(1)
		return true
	case '1':
		c.why = "Engine.IO close packet"
		return false
	case '4': // a Socket.IO packet, below
	default: // 3 (pong), 6 (noop)
		return true
	}
	if len(p) < 2 {
		return true
	}
	body := p[2:]
	switch p[1] {
	case '0': // CONNECT answered: the connection is set up
		c.markFirst()
	case '1':
		c.why = "the server disconnected the namespace"
		return false
	case '4':
		c.why = "CONNECT_ERROR " + string(body[:min(len(body), 200)])
		return false
	case '2': // EVENT, "/" without an ack id
		if bytes.HasPrefix(body, benchEvent) {
			c.recordBroadcasts(body, now)
		}
	case '3': // ACK: digits, then the arguments
		i := 0
		for i < len(body) && body[i] >= '0' && body[i] <= '9' {
			i++
		}
		if i > 0 && i < len(body) && body[i] == '[' {
			c.onEchoAnswer(body[i:])
		}
	}
	return true
}
