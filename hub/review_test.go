package hub_test

// Regression tests from the hub review. Each one pins a behaviour the
// protocol or the brief promises and that a concurrency or close-path
// mistake broke.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// hookBroker is the in-memory broker with a hook in front of Subscribe, to
// stand in for a networked broker that is slow or failing at a chosen moment.
type hookBroker struct {
	*memory.Broker
	hook atomic.Pointer[func(topic string) error]
}

func (b *hookBroker) Subscribe(ctx context.Context, topic string) error {
	if h := b.hook.Load(); h != nil {
		if err := (*h)(topic); err != nil {
			return err
		}
	}
	return b.Broker.Subscribe(ctx, topic)
}

func (b *hookBroker) setHook(f func(topic string) error) {
	if f == nil {
		b.hook.Store(nil)
		return
	}
	b.hook.Store(&f)
}

func expectAnswer(t *testing.T, f frame, typ, code string, id uint64) {
	t.Helper()
	if f.Type != typ || f.Code != code || f.ID == nil || *f.ID != id {
		got := "none"
		if f.ID != nil {
			got = strconv.FormatUint(*f.ID, 10)
		}
		t.Fatalf("got %+v (id %s), want %s %s with id %d", f, got, typ, code, id)
	}
}

// A handler that joins a room after its connection was cleaned up (a slow
// permission lookup, then ctx.Join) must not put the dead connection back in
// the room index: it would stay there for ever, with the broker subscription,
// and show up in presence.
func TestReviewJoinAfterCleanupDoesNotLeakTheConnection(t *testing.T) {
	br := memory.New()
	e := newEnv(t, func(o *hub.Options) {
		o.Broker = br
		o.HandlerTimeout = 200 * time.Millisecond
	})
	release := make(chan struct{})
	joined := make(chan error, 1)
	hub.Handle(e.hub, "enter:late", func(ctx hub.Context, in struct{}) (struct{}, error) {
		<-release // a slow lookup that does not watch ctx
		err := ctx.Join("case:7")
		joined <- err
		return struct{}{}, err
	})
	c := e.connect(claims{sub: "alice"})
	c.send(map[string]any{"type": "event", "id": 1, "event": "enter:late"})
	expectAnswer(t, c.next(), "error", hub.CodeTimeout, 1)
	c.ws.CloseNow()
	eventually(t, "the connection to be cleaned up", func() bool { return e.hub.Connections() == 0 })
	close(release)
	select {
	case err := <-joined:
		t.Logf("late Join returned %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not finish")
	}
	users, err := e.hub.Presence(context.Background(), "case:7")
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 0 {
		t.Fatalf("room case:7 still lists %v after the connection ended", users)
	}
	if n := br.Topics(); n != 1 {
		t.Fatalf("broker subscribed to %d topics after every connection ended, want 1 (all)", n)
	}
}

// R3: a message with an id gets its answer with that id, also when the
// per-connection message rate (MessageRate) refuses it.
func TestReviewMessageRateRefusalCarriesTheID(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.MessageRate = hub.Limit{Rate: 0.001, Burst: 1}
	})
	c := e.connect(claims{sub: "alice"})
	c.sendRaw(`{"type":"event","id":1,"event":"nope"}`)
	expectAnswer(t, c.next(), "error", hub.CodeUnknownEvent, 1)
	c.sendRaw(`{"type":"event","id":2,"event":"nope"}`)
	expectAnswer(t, c.next(), "error", hub.CodeRateLimited, 2)
}

// O4 and the race detector: a handler that panics after its deadline, while
// the read loop handles the next messages, is logged with its own message
// sequence number, read without a data race (run with -race, as CI does).
func TestReviewLatePanicIsLoggedWithItsOwnSequence(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.HandlerTimeout = 100 * time.Millisecond })
	proceed := make(chan struct{})
	hub.Handle(e.hub, "late:panic", func(ctx hub.Context, in struct{}) (struct{}, error) {
		<-ctx.Done()
		<-proceed
		panic("late bug")
	})
	proceed2 := make(chan struct{})
	hub.Handle(e.hub, "late:panic:2", func(ctx hub.Context, in struct{}) (struct{}, error) {
		<-ctx.Done()
		<-proceed2
		panic("late bug")
	})
	c := e.connect(claims{sub: "alice"})
	// Deterministic: the panic comes after the read loop handled message 2.
	c.sendRaw(`{"type":"event","id":1,"event":"late:panic"}`) // msg_seq 1
	expectAnswer(t, c.next(), "error", hub.CodeTimeout, 1)
	c.sendRaw(`{"type":"event","id":2,"event":"nope"}`) // msg_seq 2
	expectAnswer(t, c.next(), "error", hub.CodeUnknownEvent, 2)
	close(proceed)
	eventually(t, "the first panic to be logged", func() bool { return strings.Count(e.log.String(), `"handler_panic"`) == 1 })
	// Concurrent: the panic and the next messages race.
	c.sendRaw(`{"type":"event","id":3,"event":"late:panic:2"}`) // msg_seq 3
	expectAnswer(t, c.next(), "error", hub.CodeTimeout, 3)
	close(proceed2)
	for id := 4; id < 14; id++ {
		c.sendRaw(`{"type":"event","id":` + strconv.Itoa(id) + `,"event":"nope"}`)
	}
	for id := 4; id < 14; id++ {
		expectAnswer(t, c.next(), "error", hub.CodeUnknownEvent, uint64(id))
	}
	eventually(t, "the second panic to be logged", func() bool { return strings.Count(e.log.String(), `"handler_panic"`) == 2 })
	var seqs []uint64
	for _, line := range strings.Split(e.log.String(), "\n") {
		if !strings.Contains(line, `"handler_panic"`) {
			continue
		}
		var rec struct {
			Seq uint64 `json:"msg_seq"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, rec.Seq)
	}
	if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 3 {
		t.Fatalf("handler_panic logged with msg_seq %v, want [1 3] (the messages that ran the handlers)", seqs)
	}
}

// S8/S11: declaring a handler with a pointer input must not silently skip
// validation and sanitizing. Refusing the registration is acceptable too.
func TestReviewPointerInputIsNotASilentBypass(t *testing.T) {
	e := newEnv(t, nil)
	registered := func() (ok bool) {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		hub.Handle(e.hub, "message:ptr", func(ctx hub.Context, in *sendIn) (sendOut, error) {
			return sendOut{Content: in.Content}, nil
		})
		return true
	}()
	if !registered {
		return
	}
	c := e.connect(claims{sub: "alice"})
	c.send(map[string]any{"type": "event", "id": 1, "event": "message:ptr",
		"data": map[string]string{"conversationId": "not-a-uuid", "content": "hi"}})
	expectAnswer(t, c.next(), "error", hub.CodeInvalidMessage, 1)
	c.send(map[string]any{"type": "event", "id": 2, "event": "message:ptr",
		"data": map[string]string{"conversationId": convID, "content": "<script>x</script>hi"}})
	f := c.next()
	if f.Type != "ack" || strings.Contains(string(f.Data), "script") {
		t.Fatalf("got %+v, want an ack with sanitized content", f)
	}
	c.sendRaw(`{"type":"event","id":3,"event":"message:ptr"}`)
	expectAnswer(t, c.next(), "error", hub.CodeInvalidMessage, 3)
}

type misusedSanitizeTag struct {
	N int `json:"n" sanitize:"html"`
}

// S12: a handler whose input type misuses the sanitize tag is a server bug;
// the client must not receive the sanitizer's internal error text (type and
// package names) blamed on its input. Refusing the registration is
// acceptable too.
func TestReviewSanitizerMisuseIsNotSentToTheClient(t *testing.T) {
	e := newEnv(t, nil)
	registered := func() (ok bool) {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		hub.Handle(e.hub, "bad:tag", func(ctx hub.Context, in misusedSanitizeTag) (struct{}, error) {
			return struct{}{}, nil
		})
		return true
	}()
	if !registered {
		return
	}
	c := e.connect(claims{sub: "alice"})
	c.sendRaw(`{"type":"event","id":1,"event":"bad:tag","data":{"n":1}}`)
	f := c.next()
	if f.Code != hub.CodeInternal || strings.Contains(f.Message, "sanitize") || strings.Contains(f.Message, "hub_test") {
		t.Fatalf("got %+v, want INTERNAL with a generic message", f)
	}
}

// adapter.Handler must not block. DisconnectUser without a reason made the
// delivery run the whole close handshake inline, so one peer that does not
// answer the close frame held the broker's delivery (here: the caller) for
// seconds.
func TestReviewDisconnectUserDoesNotBlockOnASilentPeer(t *testing.T) {
	e := newEnv(t, nil)
	rc := e.dialRawTCP(token(t, claims{sub: "mallory"}))
	if op, _, err := rc.readFrame(); err != nil || op != opText {
		t.Fatalf("welcome: op %d, %v", op, err)
	}
	// From now on the peer neither reads nor answers the close handshake.
	start := time.Now()
	if err := e.hub.DisconnectUser(context.Background(), "mallory", ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("DisconnectUser blocked for %v on a peer that does not answer the close", d)
	}
	rc.nc.Close()
	eventually(t, "the connection to end", func() bool { return e.hub.Connections() == 0 })
}

// A join acknowledged while another connection's subscription to the same
// room failed must still receive the room's broadcasts: the node has to be
// subscribed whenever the room has local members.
func TestReviewFailedSubscribeDoesNotStrandOtherMembers(t *testing.T) {
	br := &hookBroker{Broker: memory.New()}
	e := newEnv(t, func(o *hub.Options) {
		o.Broker = br
		o.Rooms = allowAll
	})
	a := e.connect(claims{sub: "u1"})
	b := e.connect(claims{sub: "u2"})
	entered := make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	br.setHook(func(topic string) error {
		if topic != "room:conversation:x" {
			return nil
		}
		once.Do(func() { close(entered) })
		<-gate
		return errors.New("broker unavailable")
	})
	a.send(map[string]any{"type": "join", "id": 1, "room": "conversation:x"})
	<-entered // a's subscription is in flight and will fail
	b.send(map[string]any{"type": "join", "id": 1, "room": "conversation:x"})
	eventually(t, "u2 to be in the room", func() bool {
		users, _ := e.hub.Presence(context.Background(), "conversation:x")
		for _, u := range users {
			if u == "u2" {
				return true
			}
		}
		return false
	})
	br.setHook(nil) // the broker is back
	close(gate)
	expectAnswer(t, a.next(), "error", hub.CodeInternal, 1)
	if f := b.next(); f.Type != "ack" {
		// Refusing b is consistent too: b is not in the room, so nothing
		// can be stranded. What must never happen is an ack without delivery.
		expectAnswer(t, f, "error", hub.CodeInternal, 1)
		return
	}
	if err := e.hub.Broadcast(context.Background(), "conversation:x", "hello", nil); err != nil {
		t.Fatal(err)
	}
	f, err := b.read(2 * time.Second)
	if err != nil || f.Event != "hello" {
		t.Fatalf("u2 was acknowledged in the room but got %+v, %v instead of its broadcast", f, err)
	}
}

// welcome is the first frame of a connection (PROTOCOL.md), even when a
// broadcast reaches the node while the connection is still joining its
// automatic rooms (a broker round trip).
func TestReviewWelcomeIsTheFirstFrame(t *testing.T) {
	br := &hookBroker{Broker: memory.New()}
	e := newEnv(t, func(o *hub.Options) { o.Broker = br })
	subscribing := make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	br.setHook(func(topic string) error {
		if topic == "room:user:bob" {
			once.Do(func() { close(subscribing) })
			<-gate
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := e.dialRaw(ctx, e.header(token(t, claims{sub: "bob"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &client{t: t, ws: ws}
	<-subscribing
	if err := e.hub.ToAll(context.Background(), "news", nil); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if f := c.next(); f.Type != "welcome" {
		t.Fatalf("first frame %+v, want welcome", f)
	}
}

// S12: a panic in a custom room Authorizer (user code, like a handler) is
// recovered and answered INTERNAL; the connection survives.
func TestReviewAuthorizerPanicIsRecovered(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.Rooms = room.AuthorizerFunc(func(_ context.Context, _ auth.Identity, name string) error {
			if name == "case:boom" {
				panic("authorizer bug")
			}
			return nil
		})
	})
	c := e.connect(claims{sub: "alice"})
	c.send(map[string]any{"type": "join", "id": 1, "room": "case:boom"})
	f, err := c.read(5 * time.Second)
	if err != nil {
		t.Fatalf("connection lost instead of an INTERNAL answer: %v", err)
	}
	expectAnswer(t, f, "error", hub.CodeInternal, 1)
	c.send(map[string]any{"type": "join", "id": 2, "room": "case:ok"})
	if f := c.next(); f.Type != "ack" {
		t.Fatalf("after the panic: %+v, want ack", f)
	}
}

// PROTOCOL.md: with first-message auth, silence until the timeout gets an
// error frame and then close 4001, like the other refusals.
func TestReviewFirstMessageAuthTimeoutSendsAnError(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.FirstMessageAuth = true
		o.AuthTimeout = 200 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := e.dialRaw(ctx, e.header(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &client{t: t, ws: ws}
	f, err := c.read(5 * time.Second)
	if err != nil {
		t.Fatalf("closed without an error frame: %v", err)
	}
	if f.Type != "error" || f.Code != hub.CodeUnauthorized {
		t.Fatalf("got %+v, want an UNAUTHORIZED error", f)
	}
	if got := c.closeStatus(); got != websocket.StatusCode(hub.CloseUnauthorized) {
		t.Fatalf("close = %d, want 4001", got)
	}
}

// The ping flood limit is "AbuseLimit within AbuseWindow" like the message
// one: a few over-rate pings spread over a long connection are not a flood.
func TestReviewOccasionalExtraPingsAreNotAFlood(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.ClientPingRate = hub.Limit{Rate: 20, Burst: 1}
		o.AbuseLimit = 3
		o.AbuseWindow = 100 * time.Millisecond
	})
	rc := e.dialRawTCP(token(t, claims{sub: "alice"}))
	if op, _, err := rc.readFrame(); err != nil || op != opText {
		t.Fatalf("welcome: op %d, %v", op, err)
	}
	for range 6 {
		// Two pings at once: the second is over the rate.
		rc.frame(true, opPing, []byte("a"))
		rc.frame(true, opPing, []byte("b"))
		if err := rc.flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond) // past the window and the refill
	}
	rc.frame(true, opText, []byte(`{"type":"event","id":1,"event":"nope"}`))
	if err := rc.flush(); err != nil {
		t.Fatalf("connection closed after 6 over-rate pings in 6 windows: %v", err)
	}
	_ = rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		op, payload, err := rc.readFrame()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		switch op {
		case opClose:
			code := 0
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			t.Fatalf("closed with %d after 6 over-rate pings spread over 6 abuse windows", code)
		case opText:
			if !strings.Contains(string(payload), hub.CodeUnknownEvent) {
				t.Fatalf("got %s", payload)
			}
			return
		}
	}
}

// DisconnectUser ("log this user out everywhere") must not report success
// while reaching nobody: user ids outside the room-argument alphabet (an
// Auth0 sub is "auth0|…") authenticate fine but get no user:{id} room, so
// the publish went to a topic no node subscribes to.
func TestReviewDisconnectUserReachesEveryAcceptedUserID(t *testing.T) {
	e := newEnv(t, nil)
	const sub = "auth0|5f7c8ec7c33c6c004bbafe82"
	c := e.connect(claims{sub: sub})
	if err := e.hub.DisconnectUser(context.Background(), sub, "logout"); err != nil {
		t.Logf("DisconnectUser refused the id: %v", err) // failing loudly is acceptable
		return
	}
	for {
		f, err := c.read(2 * time.Second)
		if err != nil {
			if got := websocket.CloseStatus(err); got != websocket.StatusCode(hub.CloseUnauthorized) {
				t.Fatalf("DisconnectUser returned nil but the connection of %q was not closed with 4001: %v", sub, err)
			}
			return
		}
		if f.Type != "bye" {
			t.Fatalf("got %+v", f)
		}
	}
}

// welcome tells the client it is connected: a ToUser sent as soon as the
// welcome arrived must reach it, even when subscribing the user room takes a
// broker round trip (simulated here as 200 ms).
func TestReviewWelcomeMeansTheUserRoomIsJoined(t *testing.T) {
	br := &hookBroker{Broker: memory.New()}
	e := newEnv(t, func(o *hub.Options) { o.Broker = br })
	br.setHook(func(topic string) error {
		if topic == "room:user:carol" {
			time.Sleep(200 * time.Millisecond) // broker latency, not a wait for a condition
		}
		return nil
	})
	c := e.connect(claims{sub: "carol"})
	if err := e.hub.ToUser(context.Background(), "carol", "dm", nil); err != nil {
		t.Fatal(err)
	}
	f, err := c.read(2 * time.Second)
	if err != nil || f.Event != "dm" {
		t.Fatalf("ToUser right after the welcome got %+v, %v; want the dm", f, err)
	}
}
