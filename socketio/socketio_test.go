package socketio

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
	wsproto "github.com/wsgate/wsgate/protocol"
)

// Events reach the hub's typed handlers, with its validation; results and
// errors answer the ack callback; errors without one are the "error"
// event.
func TestEventsReachTypedHandlers(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	steps := []struct{ name, send, want string }{
		{"result_answers_the_ack", `421["echo",{"text":"hi"}]`, `431[{"text":"hi"}]`},
		{"only_the_first_argument_is_the_input", `422["echo",{"text":"a"},"ignored"]`, `432[{"text":"a"}]`},
		{"validation_error_answers_the_ack", `423["echo",{"text":""}]`, `433[{"error":{"code":"INVALID_MESSAGE","message":"field \"text\" fails \"required\""}}]`},
		{"unknown_field_refused", `424["echo",{"text":"a","x":1}]`, `434[{"error":{"code":"INVALID_MESSAGE","message":"unknown field \"x\""}}]`},
		{"no_argument_is_the_zero_input", `425["echo"]`, `435[{"error":{"code":"INVALID_MESSAGE","message":"field \"text\" fails \"required\""}}]`},
		{"unknown_event", `426["nope",1]`, `436[{"error":{"code":"UNKNOWN_EVENT","message":"unknown event"}}]`},
		{"handler_error_keeps_its_code", `427["fail"]`, `437[{"error":{"code":"FORBIDDEN","message":"not yours"}}]`},
		{"error_without_ack_is_the_error_event", `42["fail"]`, `42["error",{"code":"FORBIDDEN","message":"not yours"}]`},
		{"success_without_ack_is_silent", `42["echo",{"text":"x"}]`, ""},
		{"numeric_event_names_are_event_names", `428[12]`, `438[{"error":{"code":"UNKNOWN_EVENT","message":"unknown event"}}]`},
		{"raw_input_round_trips_without_html_escapes", `429["args",{"a":"<&>"}]`, `439[{"a":"<&>"}]`},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c.t = t
			c.send(s.send)
			if s.want != "" {
				c.expect(s.want)
			}
		})
	}
	c.t = t
	// Nothing was sent for the silent success: the next answer is the next
	// message's.
	c.send(`4210["echo",{"text":"last"}]`)
	c.expect(`4310[{"text":"last"}]`)
}

// A handler that outlives its deadline answers TIMEOUT through the ack.
func TestHandlerTimeoutAnswersTheAck(t *testing.T) {
	e := newEnv(t, nil, func(o *hub.Options) { o.HandlerTimeout = 50 * time.Millisecond })
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	c.send(`427["slow"]`)
	c.expect(`437[{"error":{"code":"TIMEOUT","message":"handler timed out"}}]`)
}

// Binary attachments reach []byte fields, over WebSocket and polling, and
// a Binary result answers with attachments.
func TestBinary(t *testing.T) {
	e := newEnv(t, nil, nil)
	t.Run("websocket", func(t *testing.T) {
		c := e.dial(e.header())
		c.t = t
		c.connect("/", `{"token":"alice"}`)
		c.send(`451-1["upload",{"name":"a.bin","data":{"_placeholder":true,"num":0}}]`)
		c.sendBinary([]byte{1, 2, 3, 4, 5})
		c.expect(`431[{"name":"a.bin","size":5}]`)
		c.send(`451-2["thumb",{"name":"p","data":{"_placeholder":true,"num":0}}]`)
		c.sendBinary([]byte("xyz"))
		c.expect(`461-2[{"name":"p","image":{"_placeholder":true,"num":0}}]`)
		c.expect("bin:thumb-of-xyz")
	})
	t.Run("polling", func(t *testing.T) {
		p := e.poll(e.header())
		p.t = t
		if st := p.post(`40{"token":"bob"}`); st != 200 {
			t.Fatalf("POST %d", st)
		}
		if _, got := p.get(); len(got) != 1 || !strings.HasPrefix(got[0], `40{"sid":"`) {
			t.Fatalf("CONNECT answer %q", got)
		}
		// Binary over polling is "b" and base64.
		if st := p.post("451-3[\"thumb\",{\"name\":\"q\",\"data\":{\"_placeholder\":true,\"num\":0}}]\x1ebAQI="); st != 200 {
			t.Fatalf("POST %d", st)
		}
		_, got := p.get()
		want := []string{`461-3[{"name":"q","image":{"_placeholder":true,"num":0}}]`, "bdGh1bWItb2YtAQI="}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// Joining and leaving go through the room policy and answer the ack; a
// broadcast to the room reaches the Socket.IO members and the hub's other
// clients, encoded once for every Socket.IO connection of the namespace.
func TestRoomsAndBroadcasts(t *testing.T) {
	e := newEnv(t, nil, nil)
	var encoded atomic.Int64
	ns := e.srv.spaces["/"]
	ns.codec = countingCodec{codec: ns.codec.(codec), n: &encoded}
	alice, bob, carol := e.dial(e.header()), e.dial(e.header()), e.dial(e.header())
	for c, tok := range map[*wsClient]string{alice: "alice", bob: "bob", carol: "carol"} {
		c.connect("/", `{"token":"`+tok+`"}`)
	}
	alice.send(`421["join","topic:go"]`)
	alice.expect(`431[]`)
	bob.send(`421["join","topic:go"]`)
	bob.expect(`431[]`)
	carol.send(`421["join","topic:secret"]`)
	carol.expect(`431[{"error":{"code":"FORBIDDEN","message":"not allowed to join this room"}}]`)
	carol.send(`422["join",42]`)
	carol.expect(`432[{"error":{"code":"INVALID_MESSAGE","message":"invalid message"}}]`)
	carol.send(`423["leave","user:carol"]`)
	carol.expect(`433[{"error":{"code":"FORBIDDEN","message":"automatic rooms cannot be left"}}]`)
	carol.send(`424["join","topic:go"]`)
	carol.expect(`434[]`)
	carol.send(`425["leave","topic:go"]`)
	carol.expect(`435[]`)

	encoded.Store(0)
	alice.send(`426["say",{"room":"topic:go","text":"<b>hi</b> & bye"}]`)
	want := `42["said",{"from":"alice","text":"hi &amp; bye"}]`
	alice.expect(want)
	alice.expect(`436[]`)
	bob.expect(want)
	if n := encoded.Load(); n != 1 {
		t.Fatalf("the broadcast was encoded %d times for 2 recipients", n)
	}
	// carol left: her next frame is the answer to her next message.
	carol.send(`426["echo",{"text":"still here"}]`)
	carol.expect(`436[{"text":"still here"}]`)

	// Server-side sends reach the Socket.IO clients too.
	if err := e.main.ToUser(context.Background(), "bob", "direct", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	bob.expect(`42["direct",{"n":1}]`)
	if err := e.main.ToAll(context.Background(), "all", nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsClient{alice, bob, carol} {
		c.expect(`42["all"]`)
	}
}

// A room holds Socket.IO and native clients alike: one broadcast reaches
// both, encoded once for each protocol.
func TestBroadcastReachesSocketIOAndNativeClients(t *testing.T) {
	e := newEnv(t, nil, nil)
	var encoded atomic.Int64
	ns := e.srv.spaces["/"]
	ns.codec = countingCodec{codec: ns.codec.(codec), n: &encoded}
	native := httptest.NewServer(e.main)
	t.Cleanup(native.Close)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	nc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(native.URL, "http"), &websocket.DialOptions{
		Subprotocols: []string{wsproto.Subprotocol, wsproto.BearerPrefix + "carol"},
		HTTPHeader:   e.header(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseNow()
	readNative := func() string {
		_, p, err := nc.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	readNative() // welcome
	if err := nc.Write(ctx, websocket.MessageText, []byte(`{"type":"join","id":1,"room":"topic:mixed"}`)); err != nil {
		t.Fatal(err)
	}
	if got := readNative(); got != `{"type":"ack","id":1}` {
		t.Fatalf("native join: %s", got)
	}
	a, b := e.dial(e.header()), e.dial(e.header())
	for c, tok := range map[*wsClient]string{a: "alice", b: "bob"} {
		c.connect("/", `{"token":"`+tok+`"}`)
		c.send(`421["join","topic:mixed"]`)
		c.expect(`431[]`)
	}
	encoded.Store(0)
	if err := e.main.Broadcast(ctx, "topic:mixed", "news", map[string]string{"title": "<b>go</b>"}); err != nil {
		t.Fatal(err)
	}
	a.expect(`42["news",{"title":"<b>go</b>"}]`)
	b.expect(`42["news",{"title":"<b>go</b>"}]`)
	if got := readNative(); got != `{"type":"event","event":"news","room":"topic:mixed","data":{"title":"\u003cb\u003ego\u003c/b\u003e"}}` {
		t.Fatalf("native: %s", got)
	}
	if n := encoded.Load(); n != 1 {
		t.Fatalf("encoded %d times for the Socket.IO recipients", n)
	}
}

// Namespaces share an Engine.IO session and each is its own hub's; a
// client leaves one and keeps the other, and an unknown one is refused.
func TestNamespaces(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.dial(e.header())
	main := c.connect("/", `{"token":"alice"}`)
	notif := c.connect("/notifications", `{"token":"alice"}`)
	if main == notif {
		t.Fatal("two namespaces, one id")
	}
	testutil.Eventually(t, wait, "a connection in each hub", func() bool {
		return e.main.Connections() == 1 && e.notif.Connections() == 1
	})
	if err := e.notif.ToUser(context.Background(), "alice", "ping", nil); err != nil {
		t.Fatal(err)
	}
	c.expect(`42/notifications,["ping"]`)
	c.send(`42/notifications,1["echo",{"text":"n"}]`)
	c.expect(`43/notifications,1[{"text":"n"}]`)
	c.send(`41/notifications,`)
	testutil.Eventually(t, wait, "the namespace's connection released", func() bool { return e.notif.Connections() == 0 })
	c.send(`421["echo",{"text":"still"}]`)
	c.expect(`431[{"text":"still"}]`)
	c.send(`40/elsewhere,`)
	c.expect(`44/elsewhere,{"message":"Invalid namespace"}`)
	// A packet for a namespace not joined ends the session, as the
	// reference server does.
	c.send(`42/notifications,["echo",{"text":"gone"}]`)
	if code := c.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %v", code)
	}
	testutil.Eventually(t, wait, "every connection released", func() bool {
		return e.main.Connections() == 0 && e.srv.Sessions() == 0
	})
}

// A refused CONNECT is CONNECT_ERROR with the wsgate code, and the
// session stays for another try.
func TestConnectErrors(t *testing.T) {
	e := newEnv(t, nil, func(o *hub.Options) {
		o.Admit = func(_ context.Context, user string) (func(), error) {
			if user == "carol" {
				return nil, errTooMany
			}
			return func() {}, nil
		}
	})
	c := e.dial(e.header())
	for _, s := range []struct{ send, want string }{
		{`40`, `44{"message":"credentials required","data":{"code":"UNAUTHORIZED"}}`},
		{`40{"token":"forged"}`, `44{"message":"invalid credentials","data":{"code":"UNAUTHORIZED"}}`},
		{`40{"token":42}`, `44{"message":"invalid credentials","data":{"code":"UNAUTHORIZED"}}`},
		{`40{"token":"expired"}`, `44{"message":"token expired","data":{"code":"TOKEN_EXPIRED"}}`},
		{`40{"token":"carol"}`, `44{"message":"too many connections","data":{"code":"CONNECTION_LIMIT_EXCEEDED"}}`},
		{`40/notifications,{"token":"nope"}`, `44/notifications,{"message":"invalid credentials","data":{"code":"UNAUTHORIZED"}}`},
	} {
		c.send(s.send)
		c.expect(s.want)
	}
	c.connect("/", `{"token":"alice"}`)
	if e.main.Connections() != 1 {
		t.Fatalf("%d connections", e.main.Connections())
	}
	// The header of the session's handshake is the credential when the
	// payload has none.
	h := e.dial(http.Header{"Origin": {e.origin}, "Authorization": {"Bearer bob"}})
	h.connect("/", "")
}

// errTooMany is an Admit error that is not a refusal: the hub answers it
// as the per-user limit.
var errTooMany = errors.New("too many")
