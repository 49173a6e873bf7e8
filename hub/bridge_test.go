package hub

import (
	"context"
	"errors"
	"net/http"
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
