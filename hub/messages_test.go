package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

type sendIn struct {
	ConversationID string `json:"conversationId" validate:"required,uuid"`
	Content        string `json:"content" validate:"required,max=40" sanitize:"html"`
}

type sendOut struct {
	Content string `json:"content"`
}

func chatEnv(t *testing.T, configure func(*hub.Options)) *env {
	e := newEnv(t, configure)
	hub.Handle(e.hub, "message:send", func(ctx hub.Context, in sendIn) (sendOut, error) {
		return sendOut{Content: in.Content}, nil
	})
	hub.Handle(e.hub, "boom", func(ctx hub.Context, in struct{}) (struct{}, error) {
		panic("handler bug")
	})
	hub.Handle(e.hub, "slow", func(ctx hub.Context, in struct{}) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	hub.Handle(e.hub, "refuse", func(ctx hub.Context, in struct{}) (struct{}, error) {
		return struct{}{}, hub.Errorf(hub.CodeForbidden, "not yours")
	})
	hub.Handle(e.hub, "fail", func(ctx hub.Context, in struct{}) (struct{}, error) {
		return struct{}{}, errors.New("database password is hunter2")
	})
	return e
}

const convID = "7d444840-9dc0-11d1-b245-5ffdce74fad2"

func TestMessages(t *testing.T) {
	e := chatEnv(t, func(o *hub.Options) { o.HandlerTimeout = 2 * time.Second })
	c := e.connect(claims{sub: "alice"})
	cases := []struct {
		name string
		send string
		want frame
	}{
		{"valid_event_is_acked_with_result", `{"type":"event","id":1,"event":"message:send","data":{"conversationId":"` + convID + `","content":"hi"}}`,
			frame{Type: "ack", Data: json.RawMessage(`{"content":"hi"}`)}},
		{"html_in_declared_field_is_sanitized", `{"type":"event","id":2,"event":"message:send","data":{"conversationId":"` + convID + `","content":"<b>hi</b><script>x</script>"}}`,
			frame{Type: "ack", Data: json.RawMessage(`{"content":"hi"}`)}},
		{"unknown_field_is_invalid", `{"type":"event","id":3,"event":"message:send","data":{"conversationId":"` + convID + `","content":"hi","admin":true}}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"missing_required_field_is_invalid", `{"type":"event","id":4,"event":"message:send","data":{"content":"hi"}}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"non_uuid_is_invalid", `{"type":"event","id":5,"event":"message:send","data":{"conversationId":"x","content":"hi"}}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"too_long_content_is_invalid", `{"type":"event","id":6,"event":"message:send","data":{"conversationId":"` + convID + `","content":"` + strings.Repeat("a", 41) + `"}}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"wrong_type_is_invalid", `{"type":"event","id":7,"event":"message:send","data":{"conversationId":1,"content":"hi"}}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"missing_data_is_invalid", `{"type":"event","id":8,"event":"message:send"}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"unknown_event_is_reported", `{"type":"event","id":9,"event":"nope"}`,
			frame{Type: "error", Code: "UNKNOWN_EVENT"}},
		{"unknown_envelope_field_is_invalid", `{"type":"event","id":10,"event":"nope","x":1}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"prototype_pollution_key_is_invalid", `{"type":"event","id":11,"event":"message:send","data":{"__proto__":{"admin":true}}}`,
			frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"panic_is_internal", `{"type":"event","id":12,"event":"boom"}`,
			frame{Type: "error", Code: "INTERNAL"}},
		{"slow_handler_times_out", `{"type":"event","id":13,"event":"slow"}`,
			frame{Type: "error", Code: "TIMEOUT"}},
		{"typed_error_reaches_client", `{"type":"event","id":14,"event":"refuse"}`,
			frame{Type: "error", Code: "FORBIDDEN", Message: "not yours"}},
		{"plain_error_is_generic", `{"type":"event","id":15,"event":"fail"}`,
			frame{Type: "error", Code: "INTERNAL", Message: "internal error"}},
		{"not_json_is_invalid", `hello`, frame{Type: "error", Code: "INVALID_MESSAGE"}},
		{"unknown_type_is_invalid", `{"type":"publish","id":16}`, frame{Type: "error", Code: "INVALID_MESSAGE"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.sendRaw(tc.send)
			got := c.next()
			if got.Type != tc.want.Type || got.Code != tc.want.Code {
				t.Fatalf("got %+v, want type %s code %s", got, tc.want.Type, tc.want.Code)
			}
			if tc.want.Data != nil && string(got.Data) != string(tc.want.Data) {
				t.Fatalf("data = %s, want %s", got.Data, tc.want.Data)
			}
			if tc.want.Message != "" && got.Message != tc.want.Message {
				t.Fatalf("message = %q, want %q", got.Message, tc.want.Message)
			}
			if strings.Contains(got.Message, "hunter2") || strings.Contains(got.Message, "handler bug") {
				t.Fatalf("internal detail leaked: %q", got.Message)
			}
		})
	}
	// The connection survived the panic, the timeout and every bad message.
	c.t = t
	c.sendRaw(`{"type":"event","id":99,"event":"message:send","data":{"conversationId":"` + convID + `","content":"still here"}}`)
	if f := c.next(); f.Type != "ack" || *f.ID != 99 {
		t.Fatalf("got %+v after errors, want ack", f)
	}
	if logs := e.log.String(); !strings.Contains(logs, "handler_panic") || !strings.Contains(logs, "goroutine") {
		t.Fatal("panic was not logged with a stack")
	}
}

func TestEveryMessageWithIDGetsExactlyOneAnswer(t *testing.T) {
	e := chatEnv(t, nil)
	c := e.connect(claims{sub: "alice"})
	const n = 15 // below the default burst of 20
	for i := 1; i <= n; i++ {
		c.send(map[string]any{"type": "event", "id": i, "event": "message:send",
			"data": map[string]string{"conversationId": convID, "content": "m"}})
	}
	seen := map[uint64]int{}
	for range n {
		f := c.next()
		if f.ID == nil {
			t.Fatalf("answer without id: %+v", f)
		}
		seen[*f.ID]++
	}
	for i := uint64(1); i <= n; i++ {
		if seen[i] != 1 {
			t.Fatalf("id %d answered %d times", i, seen[i])
		}
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.AbuseLimit = 5
	})
	var calls atomic.Int32
	hub.Handle(e.hub, "typing:start", func(ctx hub.Context, in struct{}) (struct{}, error) {
		calls.Add(1)
		return struct{}{}, nil
	}, hub.WithRateLimit(hub.Limit{Rate: 0.001, Burst: 3}))
	c := e.connect(claims{sub: "alice"})
	for i := 1; i <= 3; i++ {
		c.send(map[string]any{"type": "event", "id": i, "event": "typing:start"})
		if f := c.next(); f.Type != "ack" {
			t.Fatalf("message %d within burst: %+v", i, f)
		}
	}
	c.send(map[string]any{"type": "event", "id": 4, "event": "typing:start"})
	if f := c.next(); f.Code != "RATE_LIMITED" || *f.ID != 4 {
		t.Fatalf("over the burst: %+v, want RATE_LIMITED", f)
	}
	if calls.Load() != 3 {
		t.Fatalf("handler ran %d times, want 3", calls.Load())
	}
	// Persistent abuse closes the connection with 1008.
	for i := 0; i < 10; i++ {
		c.send(map[string]any{"type": "event", "event": "typing:start"})
	}
	if got := c.closeStatus(); got != websocket.StatusPolicyViolation {
		t.Fatalf("close = %d, want 1008", got)
	}
}

func TestRooms(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) {
		o.GlobalRole = "admin"
		o.MaxRoomsPerConn = 3
	})
	alice := e.connect(claims{sub: "alice", tenant: "acme"})
	admin := e.connect(claims{sub: "root", roles: []string{"admin"}})
	cases := []struct {
		name string
		c    *client
		room string
		want string
	}{
		{"own_user_room_is_allowed", alice, "user:alice", ""},
		{"someone_elses_user_room_is_forbidden", alice, "user:bob", "FORBIDDEN"},
		{"own_tenant_is_allowed", alice, "tenant:acme", ""},
		{"other_tenant_is_forbidden", alice, "tenant:globex", "FORBIDDEN"},
		{"global_without_role_is_forbidden", alice, "global", "FORBIDDEN"},
		{"global_with_role_is_allowed", admin, "global", ""},
		{"unknown_kind_is_denied_by_default", alice, "conversation:1", "FORBIDDEN"},
		{"invalid_name_is_invalid", alice, "user:a b", "INVALID_MESSAGE"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.t = t
			f := join(tc.c, i, tc.room)
			if tc.want == "" && f.Type != "ack" || tc.want != "" && f.Code != tc.want {
				t.Fatalf("join %s: %+v, want %q", tc.room, f, tc.want)
			}
		})
	}
	t.Run("room_limit_counts_automatic_rooms", func(t *testing.T) {
		e2 := newEnv(t, func(o *hub.Options) {
			o.MaxRoomsPerConn = 3
			o.Rooms = allowAll
		})
		c := e2.connect(claims{sub: "dave", tenant: "acme"}) // user:dave, tenant:acme
		if f := join(c, 1, "topic:a"); f.Type != "ack" {
			t.Fatalf("third room: %+v", f)
		}
		if f := join(c, 2, "topic:b"); f.Code != "ROOM_LIMIT_EXCEEDED" {
			t.Fatalf("got %+v, want ROOM_LIMIT_EXCEEDED", f)
		}
		c.send(map[string]any{"type": "leave", "id": 3, "room": "topic:a"})
		if f := c.next(); f.Type != "ack" {
			t.Fatalf("leave: %+v", f)
		}
		if f := join(c, 4, "topic:b"); f.Type != "ack" {
			t.Fatalf("join after leave: %+v", f)
		}
	})
}

var allowAll = room.AuthorizerFunc(func(context.Context, auth.Identity, string) error { return nil })
