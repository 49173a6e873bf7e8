// Package wire is wsgate's server side of RFC 6455 below the hub: the
// opening handshake on a hijacked net/http connection, a frame reader that
// sees and meters every frame, and one writer per connection that owns every
// byte written to its socket.
//
// The hub works on messages; wire works on frames. Nothing here knows about
// events, rooms or identities.
//
//	up, err := wire.Accept(w, r, wire.Response{Subprotocol: "wsgate.v1"})
//	...
//	rd := wire.NewReader(up.Conn, up.Buffered, wire.ReaderOptions{MaxMessageBytes: 64 << 10})
//	wr := wire.NewWriter(up.Conn, cfg, events)
//	for {
//		op, payload, err := rd.Next()
//		...
//		wr.Send(wire.Reply, wire.Frame{Op: wire.OpText, Payload: reply})
//	}
//
// The reader runs on one goroutine per connection and never writes. The
// writer is driven by whoever queues a frame: a small shared Pool writes
// queued frames without blocking, several per write(2), and a connection
// whose socket is full gets a goroutine of its own until its queue drains
// (see Writer for the invariants that make this correct).
package wire
