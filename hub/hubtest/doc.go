// Package hubtest tests a service's handlers without a socket, the way
// net/http/httptest tests an http.Handler: a test connects to the service's
// own hub with an identity, sends messages, and looks at what came back —
// the answer, the events the connection received, what was broadcast to a
// room.
//
// The smallest use:
//
//	func TestSend(t *testing.T) {
//		h := newHub(t) // the service's hub, its handlers registered
//		alice := hubtest.Connect(t, h, auth.Identity{UserID: "alice"})
//		room := hubtest.Listen(t, h, "conversation:"+id)
//		var reply SendReply
//		if err := alice.Call("message:send", Send{ConversationID: id, Content: "hi"}, &reply); err != nil {
//			t.Fatal(err) // a refusal is an *hubtest.Error: hubtest.Code(err) == hub.CodeInvalidMessage
//		}
//		ev, err := room.Next(t.Context()) // the broadcast the handler made
//		...
//	}
//
// Everything between the decoded frame and the bytes sent back is the hub's
// own code: a Conn is attached to the hub as a transport other than its
// WebSocket is, so its messages go through the hub's rate limits, decoding
// with unknown fields refused, validation, sanitizing, the room policy,
// middleware, the handler deadline and panic recovery, and its connection
// through admission (Options.Admit), automatic rooms, OnConnect and
// OnDisconnect. What a client's message looks like on the wire is checked
// by the hub's codec before the hub sees it. Replies and events are the
// wsgate.v1 frames a client would read, decoded.
//
// What needs a socket is not here: the handshake and its guards (origin,
// throttle, credentials — the identity is given), frame limits (size,
// UTF-8), heartbeats, compression, and slow consumers (a Conn reads
// everything at once). Test those with a real client over loopback.
//
// Timing: the hub answers a message before handing the next one in, so Call,
// Emit, Join and Leave return with the answer, bounded by the hub's handler
// deadline. With the hub's default in-memory broker a broadcast reaches
// every connection of the hub before the call that made it returns, so
// "received nothing" is checked with Events at once; with a broker between
// processes (Redis), wait for events with Next, which is bounded by its
// context or Options.Wait.
package hubtest
