package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/bridge"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wire"
	wsproto "github.com/wsgate/wsgate/protocol"
)

// recordingSink is a bridged transport that keeps what the hub sends.
type recordingSink struct {
	mu      sync.Mutex
	frames  []string
	open    bool
	closed  string
	aborted bool
}

func (s *recordingSink) Send(class wire.Class, frames ...wire.Frame) wire.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed != "":
		return wire.Closed
	case class == wire.Broadcast && !s.open:
		return wire.NotOpen
	}
	if class == wire.Open {
		s.open = true
	}
	for _, f := range frames {
		s.frames = append(s.frames, string(f.Payload))
	}
	return wire.Queued
}

func (s *recordingSink) SendBatch(_ *wire.Batch, class wire.Class, frames ...wire.Frame) wire.Result {
	return s.Send(class, frames...)
}

func (s *recordingSink) Close(code wire.StatusCode, reason string, _ bool, final ...wire.Frame) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != "" {
		return false
	}
	for _, f := range final {
		s.frames = append(s.frames, string(f.Payload))
	}
	s.closed = reason
	return true
}

func (s *recordingSink) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
}

func (s *recordingSink) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.frames {
		if strings.Contains(f, sub) {
			return true
		}
	}
	return false
}

// A connection served by another transport gets the hub's welcome,
// handlers, rooms and deliveries, and is released when the transport says
// it is over.
func TestBridgedConnection(t *testing.T) {
	h := newPipeHub(t, func(o *Options) { o.Rooms = allowEverything{} })
	Handle(h, "echo", func(ctx Context, in string) (string, error) { return in, nil })
	s := &recordingSink{}
	id := auth.Identity{UserID: "bridged", ExpiresAt: time.Now().Add(time.Hour)}
	bc, err := bridge.Attach(h, bridge.Request{Ctx: context.Background(), ClientIP: "10.0.0.1"}, id, protocol.Native{}, s)
	if err != nil {
		t.Fatal(err)
	}
	eventually := func(what string, cond func() bool) { testutil.Eventually(t, 5*time.Second, what, cond) }
	if !s.has(`"type":"welcome"`) || !s.has(bc.ID()) {
		t.Fatalf("no welcome: %q", s.frames)
	}
	bc.Handle(protocol.Inbound{Kind: protocol.KindEvent, Event: "echo", ID: 1, HasID: true, Data: []byte(`"hi"`)})
	eventually("the ack", func() bool { return s.has(`{"type":"ack","id":1,"data":"hi"}`) })
	bc.Handle(protocol.Inbound{Kind: protocol.KindJoin, Room: "topic:x", ID: 2, HasID: true})
	eventually("the join's ack", func() bool { return s.has(`{"type":"ack","id":2}`) })
	_ = h.Broadcast(context.Background(), "topic:x", "news", nil)
	_ = h.ToUser(context.Background(), "bridged", "direct", nil)
	eventually("the deliveries", func() bool { return s.has(`"event":"news"`) && s.has(`"event":"direct"`) })
	if h.Connections() != 1 {
		t.Fatalf("%d connections", h.Connections())
	}
	bc.Closed("client_left")
	bc.Closed("again") // once
	if h.Connections() != 0 {
		t.Fatal("not released")
	}
	if users, _ := h.Presence(context.Background(), "topic:x"); len(users) != 0 {
		t.Fatalf("still present: %v", users)
	}
}

// Admission applies to bridged connections too.
func TestBridgedAdmission(t *testing.T) {
	h := newPipeHub(t, func(o *Options) {
		o.Admit = func(context.Context, string) (func(), error) {
			return nil, &wsproto.Refusal{Status: http.StatusTooManyRequests, Code: wsproto.CodeConnectionLimit, Message: "too many"}
		}
	})
	_, err := bridge.Attach(h, bridge.Request{Ctx: context.Background()}, auth.Identity{UserID: "u"}, protocol.Native{}, &recordingSink{})
	var rej *wsproto.Refusal
	if !errors.As(err, &rej) || rej.Code != wsproto.CodeConnectionLimit {
		t.Fatalf("err = %v", err)
	}
	if h.Connections() != 0 {
		t.Fatal("a refused connection is counted")
	}
}

type allowEverything struct{}

func (allowEverything) CanJoin(context.Context, auth.Identity, string) error { return nil }

// bridgeAuth knows a few tokens: one good, one expired, one whose keys
// cannot be fetched.
type bridgeAuth struct{}

func (bridgeAuth) Authenticate(_ context.Context, tok string) (auth.Identity, error) {
	switch tok {
	case "good":
		return auth.Identity{UserID: "bridged", ExpiresAt: time.Now().Add(time.Hour)}, nil
	case "expired":
		return auth.Identity{}, auth.ErrTokenExpired
	case "outage":
		return auth.Identity{}, auth.ErrKeyLookup
	}
	return auth.Identity{}, auth.ErrInvalidToken
}

// authCounter counts the auth failures and refusals the hub reports.
type authCounter struct {
	NopObserver
	mu       sync.Mutex
	failures []string
	refused  []string
}

func (o *authCounter) AuthFailed(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures = append(o.failures, reason)
}

func (o *authCounter) Refused(event string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refused = append(o.refused, event)
}

// Connect authenticates as the hub's handshake does: the in-band token
// first, else the credential its Tokens extractor finds in the session's
// request; a refusal carries the code the client is told, and is counted
// and logged like a handshake's.
func TestBridgedConnect(t *testing.T) {
	request := func(header http.Header) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://example.test/socket.io/?EIO=4&transport=polling", nil)
		if header != nil {
			r.Header = header
		}
		r.RemoteAddr = "10.0.0.9:1234"
		return r
	}
	cases := []struct {
		name    string
		tokens  auth.Extractor
		token   string
		header  http.Header
		admit   bool // Admit refuses
		code    string
		refused string // the refusal's event in metrics and the log
	}{
		{name: "in-band_token", token: "good"},
		{name: "authorization_header_without_in-band_token", header: http.Header{"Authorization": {"Bearer good"}}},
		{name: "in-band_token_wins_over_the_header", token: "good", header: http.Header{"Authorization": {"Bearer bad"}}},
		{name: "cookie_when_the_hub_reads_one", tokens: auth.Extractor{Cookie: "tok"}, header: http.Header{"Cookie": {"tok=good"}}},
		{name: "cookie_ignored_when_the_hub_reads_none", header: http.Header{"Cookie": {"tok=good"}},
			code: wsproto.CodeUnauthorized, refused: "unauthorized"},
		{name: "no_credential", code: wsproto.CodeUnauthorized, refused: "unauthorized"},
		{name: "bad_token", token: "forged", code: wsproto.CodeUnauthorized, refused: "unauthorized"},
		{name: "expired_token", token: "expired", code: wsproto.CodeTokenExpired, refused: "unauthorized"},
		{name: "keys_unavailable", token: "outage", code: wsproto.CodeUnavailable, refused: "key_lookup"},
		{name: "admission_refused", token: "good", admit: true, code: wsproto.CodeConnectionLimit, refused: "user_connection_limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testutil.SyncBuffer{}
			obs := &authCounter{}
			h := newPipeHub(t, func(o *Options) {
				o.Authenticator = bridgeAuth{}
				o.Tokens = tc.tokens
				o.Observer = obs
				o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
				if tc.admit {
					o.Admit = func(context.Context, string) (func(), error) {
						return nil, &wsproto.Refusal{Status: http.StatusTooManyRequests, Code: wsproto.CodeConnectionLimit, Message: "too many"}
					}
				}
			})
			s := &recordingSink{}
			bc, err := bridge.Connect(h, bridge.Credential{Token: tc.token, Request: request(tc.header)}, protocol.Native{}, s)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				defer bc.Closed("test_over")
				if !s.has(`"type":"welcome"`) || !s.has(`"userId":"bridged"`) {
					t.Fatalf("no welcome for bridged: %q", s.frames)
				}
				return
			}
			var rej *wsproto.Refusal
			if !errors.As(err, &rej) || rej.Code != tc.code {
				t.Fatalf("err = %v, want a refusal with %s", err, tc.code)
			}
			if h.Connections() != 0 || len(s.frames) != 0 {
				t.Fatalf("a refused connection left %d connections and frames %q", h.Connections(), s.frames)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.refused) != 1 || obs.refused[0] != tc.refused {
				t.Fatalf("refusals counted %q, want [%s]", obs.refused, tc.refused)
			}
			if want := tc.refused != "user_connection_limit"; (len(obs.failures) == 1) != want {
				t.Fatalf("auth failures counted %q", obs.failures)
			}
			line := logs.String()
			if !strings.Contains(line, `"msg":"connection refused"`) || !strings.Contains(line, `"event":"`+tc.refused+`"`) ||
				!strings.Contains(line, `"ip":"10.0.0.9"`) || strings.Contains(line, "good") || strings.Contains(line, "forged") {
				t.Fatalf("log %s", line)
			}
		})
	}
}

// The session's request stands for the upgrade request: the tracer's
// handshake starts from it and ends with the outcome, and the
// connection's handlers run in its context.
func TestBridgedConnectTracesTheHandshake(t *testing.T) {
	tr := &handshakeTracer{}
	h := newPipeHub(t, func(o *Options) { o.Authenticator = bridgeAuth{}; o.Tracer = tr })
	var parent string
	Handle(h, "whoami", func(ctx Context, _ struct{}) (struct{}, error) {
		parent, _ = ctx.Value(spanName{}).(string)
		return struct{}{}, nil
	})
	r, _ := http.NewRequest(http.MethodGet, "http://example.test/socket.io/", nil)
	bc, err := bridge.Connect(h, bridge.Credential{Token: "good", Request: r}, protocol.Native{}, &recordingSink{})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Closed("test_over")
	bc.Handle(protocol.Inbound{Kind: protocol.KindEvent, Event: "whoami", ID: 1, HasID: true})
	if _, err := bridge.Connect(h, bridge.Credential{Token: "forged", Request: r}, protocol.Native{}, &recordingSink{}); err == nil {
		t.Fatal("a forged token connected")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.ends) != 2 || tr.ends[0] != nil || tr.ends[1] == nil {
		t.Fatalf("handshakes ended with %v, want [nil, the refusal]", tr.ends)
	}
	if parent != "handshake" {
		t.Fatalf("the handler's context is not the handshake's: %q", parent)
	}
}

type spanName struct{}

// handshakeTracer records how handshakes end.
type handshakeTracer struct {
	NopTracer
	mu   sync.Mutex
	ends []error
}

func (tr *handshakeTracer) Handshake(r *http.Request) (context.Context, func(error)) {
	return context.WithValue(r.Context(), spanName{}, "handshake"), func(err error) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.ends = append(tr.ends, err)
	}
}

// attachedValue is a handler result with attachments.
type attachedValue struct {
	JSON json.RawMessage
	bin  [][]byte
}

func (a attachedValue) MarshalJSON() ([]byte, error) { return a.JSON, nil }
func (a attachedValue) BinaryAttachments() [][]byte  { return a.bin }

// binaryCodec is wsgate.v1 with each attachment as a binary frame after
// the text, as a protocol with attachments frames them.
type binaryCodec struct{ protocol.Native }

func (b binaryCodec) Encode(dst []wire.Frame, m *protocol.Message) []wire.Frame {
	dst = b.Native.Encode(dst, m)
	for _, a := range m.Binary {
		dst = append(dst, wire.Frame{Op: wire.OpBinary, Payload: a})
	}
	return dst
}

// A message's attachments reach its handler, and a handler's result or
// emitted event that carries attachments is sent with them; an invalid
// message is answered INVALID_MESSAGE with its id.
func TestBridgedAttachmentsAndInvalidMessages(t *testing.T) {
	h := newPipeHub(t, func(o *Options) { o.Authenticator = bridgeAuth{} })
	Handle(h, "upload", func(ctx Context, in json.RawMessage) (attachedValue, error) {
		got := bridge.Attachments(ctx)
		if err := bridge.Emit(ctx, "stored", attachedValue{JSON: json.RawMessage(`{"n":1}`), bin: [][]byte{[]byte("thumb")}}); err != nil {
			return attachedValue{}, err
		}
		return attachedValue{JSON: in, bin: got}, nil
	})
	r, _ := http.NewRequest(http.MethodGet, "http://example.test/socket.io/", nil)
	s := &recordingSink{}
	bc, err := bridge.Connect(h, bridge.Credential{Token: "good", Request: r}, binaryCodec{}, s)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Closed("test_over")
	bc.Handle(protocol.Inbound{Kind: protocol.KindEvent, Event: "upload", ID: 3, HasID: true,
		Data: []byte(`{"_placeholder":true,"num":0}`), Binary: [][]byte{[]byte("\x01\x02")}})
	bc.HandleInvalid(protocol.Inbound{Kind: protocol.KindJoin, ID: 4, HasID: true}, errors.New("no room name"))
	s.mu.Lock()
	defer s.mu.Unlock()
	want := []string{
		`{"type":"event","event":"stored","data":{"n":1}}`, "thumb",
		`{"type":"ack","id":3,"data":{"_placeholder":true,"num":0}}`, "\x01\x02",
		`{"type":"error","id":4,"code":"INVALID_MESSAGE","message":"invalid message"}`,
	}
	if got := s.frames[1:]; !slices.Equal(got, want) { // after the welcome
		t.Fatalf("frames\n got %q\nwant %q", got, want)
	}
}

// fullSink refuses every reply as a full queue would, and reports the
// connection over as soon as the hub closes it, as a transport that has
// nothing left to flush does.
type fullSink struct {
	recordingSink
	conn bridge.Conn
}

func (s *fullSink) Send(class wire.Class, frames ...wire.Frame) wire.Result {
	if class == wire.Reply {
		return wire.Full
	}
	return s.recordingSink.Send(class, frames...)
}

func (s *fullSink) Close(code wire.StatusCode, reason string, now bool, final ...wire.Frame) bool {
	if !s.recordingSink.Close(code, reason, now, final...) {
		return false
	}
	// From another goroutine, as the Sink contract asks, but before Close
	// returns: the transport is that quick.
	done := make(chan struct{})
	go func() { s.conn.Closed("transport_closed"); close(done) }()
	<-done
	return true
}

// A slow consumer is recorded as such even when its transport reports the
// end before the hub's close call has returned.
func TestBridgedSlowConsumerReason(t *testing.T) {
	reasons := make(chan string, 1)
	h := newPipeHub(t, func(o *Options) {
		o.Authenticator = bridgeAuth{}
		o.OnDisconnect = func(_ ConnInfo, reason string) { reasons <- reason }
	})
	Handle(h, "chatty", func(ctx Context, _ struct{}) (struct{}, error) {
		return struct{}{}, ctx.Emit("more", 1)
	})
	r, _ := http.NewRequest(http.MethodGet, "http://example.test/socket.io/", nil)
	s := &fullSink{}
	bc, err := bridge.Connect(h, bridge.Credential{Token: "good", Request: r}, protocol.Native{}, s)
	if err != nil {
		t.Fatal(err)
	}
	s.conn = bc
	bc.Handle(protocol.Inbound{Kind: protocol.KindEvent, Event: "chatty"})
	select {
	case got := <-reasons:
		if got != "slow_consumer" {
			t.Fatalf("disconnect reason %q, want slow_consumer", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not disconnected")
	}
}
