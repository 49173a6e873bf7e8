package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub/hubtest"
)

var demoRoom = conversationRoom(demoConversation)

func TestParticipantsReceiveSanitizedMessage(t *testing.T) {
	e := startServer(t, nil)
	aliceTab1, aliceTab2, bob := e.connect(t, "alice"), e.connect(t, "alice"), e.connect(t, "bob")
	for _, c := range []*client{aliceTab1, aliceTab2, bob} {
		c.mustJoin(demoRoom)
	}

	reply := aliceTab1.event("message:send", map[string]any{
		"conversationId": demoConversation,
		"content":        `<b>hi</b><script>alert(1)</script>`,
	})
	if reply.Type != "ack" {
		t.Fatalf("message:send: %s %s", reply.Code, reply.Message)
	}
	var ack sendReply
	decode(t, reply.Data, &ack)
	if ack.ID == "" || ack.SentAt.IsZero() {
		t.Fatalf("ack data %s lacks id or sentAt", reply.Data)
	}

	// Everyone in the room gets it, the sender's own tabs included.
	for name, c := range map[string]*client{"alice tab 1": aliceTab1, "alice tab 2": aliceTab2, "bob": bob} {
		f := c.next(func(f frame) bool { return f.Event == "message:new" })
		var got messageNew
		decode(t, f.Data, &got)
		want := messageNew{ID: ack.ID, ConversationID: demoConversation, SenderID: "alice", Content: "hi", SentAt: ack.SentAt}
		if f.Room != demoRoom || got != want {
			t.Errorf("%s got %s in room %q, want %+v in %q", name, f.Data, f.Room, want, demoRoom)
		}
	}
}

func TestNonParticipantIsRefusedAndReceivesNothing(t *testing.T) {
	e := startServer(t, nil)
	alice, bob, carol := e.connect(t, "alice"), e.connect(t, "bob"), e.connect(t, "carol")
	alice.mustJoin(demoRoom)
	bob.mustJoin(demoRoom)

	if f := carol.join(demoRoom); f.Type != "error" || f.Code != "FORBIDDEN" {
		t.Fatalf("carol's join: %+v, want FORBIDDEN", f)
	}
	if f := alice.event("message:send", map[string]any{"conversationId": demoConversation, "content": "private"}); f.Type != "ack" {
		t.Fatalf("alice's send: %s %s", f.Code, f.Message)
	}
	bob.next(func(f frame) bool { return f.Event == "message:new" })
	for _, f := range carol.sync() {
		if f.Type == "event" {
			t.Errorf("carol received %s %s", f.Event, f.Data)
		}
	}
}

func TestRoomPolicy(t *testing.T) {
	e := startServer(t, nil)
	tests := []struct {
		name, user, room, wantCode string
	}{
		{"participant_joins_conversation", "alice", demoRoom, ""},
		{"other_participants_join_their_conversation", "carol", conversationRoom(privateConversation), ""},
		{"non_participant_is_forbidden", "alice", conversationRoom(privateConversation), "FORBIDDEN"},
		{"unknown_conversation_is_forbidden", "alice", conversationRoom("5b0c7d52-1d7e-4f4e-9a8b-3c2d1e0f9a8b"), "FORBIDDEN"},
		{"own_user_room_is_allowed", "alice", "user:alice", ""},
		{"another_users_room_is_forbidden", "alice", "user:bob", "FORBIDDEN"},
		{"global_is_forbidden_without_role", "alice", "global", "FORBIDDEN"},
		{"unconfigured_kind_is_denied_by_default", "alice", "case:42", "FORBIDDEN"},
		{"malformed_name_is_invalid", "alice", "conversation:a b", "INVALID_MESSAGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect(t, tt.user)
			f := c.join(tt.room)
			switch {
			case tt.wantCode == "" && f.Type != "ack":
				t.Errorf("join %s: %s %s, want ack", tt.room, f.Code, f.Message)
			case tt.wantCode != "" && (f.Type != "error" || f.Code != tt.wantCode):
				t.Errorf("join %s: %+v, want %s", tt.room, f, tt.wantCode)
			}
		})
	}
}

func TestEventsAboutAnotherConversationAreForbidden(t *testing.T) {
	e := startServer(t, nil)
	bob := e.connect(t, "bob")
	bob.mustJoin(conversationRoom(privateConversation))
	tests := []struct {
		name, event string
		data        map[string]any
	}{
		{"message_send", "message:send", map[string]any{"conversationId": privateConversation, "content": "let me in"}},
		{"message_read", "message:read", map[string]any{"conversationId": privateConversation, "messageId": demoConversation}},
		{"typing_start", "typing:start", map[string]any{"conversationId": privateConversation}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice := e.connect(t, "alice")
			if f := alice.event(tt.event, tt.data); f.Type != "error" || f.Code != "FORBIDDEN" {
				t.Fatalf("%s: %+v, want FORBIDDEN", tt.event, f)
			}
			for _, f := range bob.sync() {
				if f.Type == "event" {
					t.Errorf("bob received %s %s", f.Event, f.Data)
				}
			}
		})
	}
}

func TestInvalidMessagesChangeNothing(t *testing.T) {
	e := startServer(t, nil)
	alice, bob := e.connect(t, "alice"), e.connect(t, "bob")
	alice.mustJoin(demoRoom)
	bob.mustJoin(demoRoom)
	send := func(data any) map[string]any {
		return map[string]any{"type": "event", "event": "message:send", "data": data}
	}
	tests := []struct {
		name     string
		msg      map[string]any
		wantCode string // "" for an ack
	}{
		{"content_of_10000_chars_is_accepted", send(map[string]any{"conversationId": demoConversation, "content": strings.Repeat("é", 10_000)}), ""},
		{"content_over_10000_chars_is_invalid", send(map[string]any{"conversationId": demoConversation, "content": strings.Repeat("a", 10_001)}), "INVALID_MESSAGE"},
		{"missing_content_is_invalid", send(map[string]any{"conversationId": demoConversation}), "INVALID_MESSAGE"},
		{"empty_content_is_invalid", send(map[string]any{"conversationId": demoConversation, "content": ""}), "INVALID_MESSAGE"},
		{"markup_only_content_is_invalid", send(map[string]any{"conversationId": demoConversation, "content": "<script>alert(1)</script>"}), "INVALID_MESSAGE"},
		{"conversation_id_must_be_a_uuid", send(map[string]any{"conversationId": "../etc/passwd", "content": "hi"}), "INVALID_MESSAGE"},
		{"unknown_field_is_invalid", send(map[string]any{"conversationId": demoConversation, "content": "hi", "admin": true}), "INVALID_MESSAGE"},
		{"wrong_type_is_invalid", send(map[string]any{"conversationId": demoConversation, "content": 42}), "INVALID_MESSAGE"},
		{"typing_without_conversation_is_invalid", map[string]any{"type": "event", "event": "typing:start", "data": map[string]any{}}, "INVALID_MESSAGE"},
		{"unregistered_event_is_unknown", map[string]any{"type": "event", "event": "message:delete", "data": map[string]any{}}, "UNKNOWN_EVENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := alice.call(tt.msg)
			if tt.wantCode == "" {
				if f.Type != "ack" {
					t.Fatalf("got %s %s, want an ack", f.Code, f.Message)
				}
				bob.next(func(f frame) bool { return f.Event == "message:new" })
				return
			}
			if f.Type != "error" || f.Code != tt.wantCode {
				t.Fatalf("got %+v, want %s", f, tt.wantCode)
			}
			for _, f := range bob.sync() {
				if f.Type == "event" {
					t.Errorf("bob received %s after a refused message", f.Event)
				}
			}
		})
	}
}

// The handlers and the room policy need no socket: hubtest calls them with
// an identity, through the same hub a client reaches.
func TestTypingAndReadReceiptsReachOnlyTheOthers(t *testing.T) {
	h := newHub(t)
	alice := hubtest.Connect(t, h, auth.Identity{UserID: "alice"})
	bob := hubtest.Connect(t, h, auth.Identity{UserID: "bob"})
	for _, c := range []*hubtest.Conn{alice, bob} {
		if err := c.Join(demoRoom); err != nil {
			t.Fatal(err)
		}
	}

	for _, typing := range []bool{true, false} {
		event := map[bool]string{true: "typing:start", false: "typing:stop"}[typing]
		if err := alice.Emit(event, typingChange{ConversationID: demoConversation}); err != nil {
			t.Fatalf("%s: %v", event, err)
		}
		ev, err := bob.Next(t.Context())
		var got typingNotice
		if err != nil || ev.Name != "typing" || ev.Room != demoRoom || ev.Decode(&got) != nil {
			t.Fatalf("%s: bob got %+v, %v", event, ev, err)
		}
		if want := (typingNotice{UserID: "alice", ConversationID: demoConversation, Typing: typing}); got != want {
			t.Errorf("%s: bob got %+v, want %+v", event, got, want)
		}
	}
	msgID := newUUID()
	if err := bob.Call("message:read", messageRead{ConversationID: demoConversation, MessageID: msgID}, nil); err != nil {
		t.Fatalf("message:read: %v", err)
	}
	ev, err := alice.Next(t.Context())
	var receipt readReceipt
	if err != nil || ev.Name != "message:read" || ev.Decode(&receipt) != nil {
		t.Fatalf("alice got %+v, %v", ev, err)
	}
	if receipt.UserID != "bob" || receipt.MessageID != msgID || receipt.ConversationID != demoConversation {
		t.Errorf("alice got receipt %+v", receipt)
	}
	// The in-memory broker delivers before the sender's call returns: what
	// a sender has not received by now, it never will.
	for name, c := range map[string]*hubtest.Conn{"alice": alice, "bob": bob} {
		for _, ev := range c.Events() {
			if (c == alice && ev.Name == "typing") || (c == bob && ev.Name == "message:read") {
				t.Errorf("%s received its own %s", name, ev.Name)
			}
		}
	}
}

func TestTypingHasATighterRateLimit(t *testing.T) {
	e := startServer(t, nil)
	alice := e.connect(t, "alice")
	// The default event limit has a burst of 20; typing's is 4 at 2/s, so
	// ten back-to-back indicators must hit it however slow the machine is.
	limited := 0
	for range 10 {
		if f := alice.event("typing:start", map[string]any{"conversationId": demoConversation}); f.Code == "RATE_LIMITED" {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("ten typing:start in a row were all accepted")
	}
	if f := alice.event("message:send", map[string]any{"conversationId": demoConversation, "content": "still here"}); f.Type != "ack" {
		t.Fatalf("message:send after typing was limited: %s %s", f.Code, f.Message)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	e := startServer(t, nil)
	other := startServer(t, nil)
	bearer := func(tok string) string { return "Bearer " + tok }
	valid := e.token(t, "alice")
	tests := []struct {
		name       string
		header     http.Header
		protocols  []string
		wantStatus int
		wantCode   string
	}{
		{"foreign_origin_is_forbidden", http.Header{"Origin": {"https://evil.example"}, "Authorization": {bearer(valid)}}, nil, 403, "FORBIDDEN"},
		{"lookalike_origin_is_forbidden", http.Header{"Origin": {e.origin + ".evil.example"}, "Authorization": {bearer(valid)}}, nil, 403, "FORBIDDEN"},
		{"other_port_is_forbidden", http.Header{"Origin": {other.origin}, "Authorization": {bearer(valid)}}, nil, 403, "FORBIDDEN"},
		{"null_origin_is_forbidden", http.Header{"Origin": {"null"}, "Authorization": {bearer(valid)}}, nil, 403, "FORBIDDEN"},
		{"missing_origin_is_forbidden", http.Header{"Origin": {""}, "Authorization": {bearer(valid)}}, nil, 403, "FORBIDDEN"},
		{"no_token_is_unauthorized", nil, nil, 401, "UNAUTHORIZED"},
		{"garbage_token_is_unauthorized", http.Header{"Authorization": {bearer("not.a.jwt")}}, nil, 401, "UNAUTHORIZED"},
		{"token_of_another_server_is_unauthorized", http.Header{"Authorization": {bearer(other.token(t, "alice"))}}, nil, 401, "UNAUTHORIZED"},
		{"missing_subprotocol_is_a_bad_request", http.Header{"Authorization": {bearer(valid)}}, []string{"chat"}, 400, "BAD_REQUEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			protocols := tt.protocols
			if protocols == nil {
				protocols = []string{"wsgate.v1"}
			}
			ws, resp, err := e.dial(t, tt.header, protocols...)
			if err == nil {
				ws.CloseNow()
				t.Fatal("the handshake succeeded")
			}
			if resp == nil || resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %s, want %d", describe(resp), tt.wantStatus)
			}
			var body refusal
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Code != tt.wantCode {
				t.Errorf("body code %q (%v), want %s", body.Code, err, tt.wantCode)
			}
		})
	}
}

func TestHandshakeFloodIsThrottled(t *testing.T) {
	e := startServer(t, func(c *config) { c.Throttle = guard.ThrottleOptions{Attempts: 3, Window: time.Hour} })
	for i := range 3 {
		// Refused by origin, yet counted: the throttle is outermost.
		_, resp, _ := e.dial(t, http.Header{"Origin": {"https://evil.example"}}, "wsgate.v1")
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("attempt %d: %s, want 403", i+1, describe(resp))
		}
	}
	_, resp, _ := e.dial(t, nil, "wsgate.v1")
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth attempt: %s, want 429 with Retry-After", describe(resp))
	}
}

func TestTokenSources(t *testing.T) {
	e := startServer(t, nil)
	tests := []struct {
		name      string
		header    func(t *testing.T) http.Header
		protocols []string
	}{
		{"authorization_header", func(t *testing.T) http.Header {
			return http.Header{"Authorization": {"Bearer " + e.token(t, "bob")}}
		}, nil},
		{"subprotocol_entry", func(*testing.T) http.Header { return nil }, []string{"wsgate.bearer." + e.token(t, "bob")}},
		{"cookie_from_demo_login", func(t *testing.T) http.Header {
			return http.Header{"Cookie": {demoLoginCookie(t, e, "bob").String()}}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connectWith(t, tt.header(t), "bob", tt.protocols...)
			c.mustJoin(conversationRoom(privateConversation))
		})
	}
}

// demoLoginCookie logs in through /demo/login like the page does and
// returns the token cookie after checking its attributes.
func demoLoginCookie(t *testing.T, e *testEnv, user string) *http.Cookie {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/demo/login", strings.NewReader(url.Values{"user": {user}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.origin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("demo login: %s", describe(resp))
	}
	var body loginResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.User != user || body.Token == "" || len(body.Conversations) != 2 {
		t.Fatalf("login response %+v", body)
	}
	i := slices.IndexFunc(resp.Cookies(), func(c *http.Cookie) bool { return c.Name == tokenCookie })
	if i < 0 {
		t.Fatalf("no %s cookie in %q", tokenCookie, resp.Header.Values("Set-Cookie"))
	}
	c := resp.Cookies()[i]
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Value != body.Token {
		t.Fatalf("cookie %s lacks HttpOnly, SameSite=Lax, Path=/ or the token", c)
	}
	return &http.Cookie{Name: c.Name, Value: c.Value}
}

func TestDemoLoginRefusals(t *testing.T) {
	e := startServer(t, nil)
	tests := []struct {
		name, method, origin, user string
		wantStatus                 int
	}{
		{"unknown_user_is_a_bad_request", http.MethodPost, "", "mallory", http.StatusBadRequest},
		{"foreign_origin_is_forbidden", http.MethodPost, "https://evil.example", "alice", http.StatusForbidden},
		{"get_is_not_allowed", http.MethodGet, "", "alice", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, e.url+"/demo/login", strings.NewReader(url.Values{"user": {tt.user}}.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || len(resp.Cookies()) != 0 {
				t.Fatalf("got %s with %d cookies, want %d and none", describe(resp), len(resp.Cookies()), tt.wantStatus)
			}
		})
	}
}

func TestConfiguredSecretDisablesDemoMode(t *testing.T) {
	e := startServer(t, func(c *config) { c.Secret = []byte("0123456789abcdef0123456789abcdef") })
	resp, err := http.Post(e.url+"/demo/login", "application/x-www-form-urlencoded", strings.NewReader("user=alice"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /demo/login: %s, want 404", resp.Status)
	}
	if _, _, err := e.s.demoToken("alice"); err == nil {
		t.Fatal("the server issued a demo token with a configured secret")
	}
	// Tokens from the identity provider, signed with the secret, work.
	e.connect(t, "alice").mustJoin(demoRoom)
}

func TestDemoSecretsDifferPerRun(t *testing.T) {
	a, b := startServer(t, nil), startServer(t, nil)
	if string(a.s.secret) == string(b.s.secret) || len(a.s.secret) < 32 {
		t.Fatal("two demo runs share a secret, or it is short")
	}
	tok := a.token(t, "alice")
	a.connectWith(t, http.Header{"Authorization": {"Bearer " + tok}}, "alice")
	_, resp, err := b.dial(t, http.Header{"Authorization": {"Bearer " + tok}}, "wsgate.v1")
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the other run answered %s, want 401", describe(resp))
	}
}

func TestUnsafeConfigIsRefused(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
	}{
		{"short_secret", config{Addr: "127.0.0.1:8080", Secret: []byte("hunter2")}},
		{"wildcard_origin", config{Addr: "127.0.0.1:8080", Origins: []string{"*"}}},
		{"origin_with_path", config{Addr: "127.0.0.1:8080", Origins: []string{"http://127.0.0.1:8080/"}}},
		{"all_interfaces_without_origins", config{Addr: ":8080"}},
		{"unspecified_address_without_origins", config{Addr: "0.0.0.0:8080"}},
		{"address_without_port", config{Addr: "localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := newServer(tt.cfg); err == nil {
				_ = s.Shutdown(context.Background())
				t.Fatal("newServer accepted the config")
			}
		})
	}
}

func TestPageIsServedWithSecurityHeaders(t *testing.T) {
	e := startServer(t, nil)
	wantCSP := "default-src 'self'; connect-src 'self' ws://" + strings.TrimPrefix(e.origin, "http://") + " ws://localhost:" + strings.TrimPrefix(e.origin, "http://127.0.0.1:")
	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/html", `<script type="module" src="/static/app.js"></script>`},
		{"/static/app.js", "text/javascript", "import { WsgateClient } from './wsgate.js';"},
		{"/static/wsgate.js", "text/javascript; charset=utf-8", "export class WsgateClient"},
		{"/static/style.css", "text/css", "#messages"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(strings.Trim(tt.path, "/"), "/", "_")+"_is_served", func(t *testing.T) {
			resp, err := http.Get(e.url + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body := describe(resp)
			resp.Body.Close()
			h := resp.Header
			switch {
			case resp.StatusCode != http.StatusOK:
				t.Fatalf("status %s", resp.Status)
			case !strings.HasPrefix(h.Get("Content-Type"), tt.wantType):
				t.Errorf("Content-Type %q, want %s", h.Get("Content-Type"), tt.wantType)
			case !strings.HasPrefix(h.Get("Content-Security-Policy"), wantCSP):
				t.Errorf("CSP %q, want it to start with %q", h.Get("Content-Security-Policy"), wantCSP)
			case h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer":
				t.Errorf("missing nosniff or Referrer-Policy: %v", h)
			case !strings.Contains(body, tt.wantBody):
				t.Errorf("body lacks %q", tt.wantBody)
			case strings.Count(body, "<script") != len(externalScript.FindAllString(body, -1)):
				t.Error("the page has an inline script")
			}
		})
	}
	for _, path := range []string{"/static/", "/static/index.html", "/ws.go"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
}

// externalScript matches a script tag that loads its code from a URL.
var externalScript = regexp.MustCompile(`<script\b[^>]*\ssrc=`)

// TestBrowserModuleIsServed checks that the page's imports resolve to the
// wsgate browser module, served as a JavaScript module must be: a
// JavaScript MIME type (browsers refuse to run a module of another type),
// nosniff, the page's CSP, and revalidation against a strong ETag.
func TestBrowserModuleIsServed(t *testing.T) {
	e := startServer(t, nil)
	resp, err := http.Get(e.url + "/static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	app := describe(resp)
	resp.Body.Close()
	imports := regexp.MustCompile(`(?m)^import [^;]* from '([^']+)';`).FindAllStringSubmatch(app, -1)
	if len(imports) == 0 {
		t.Fatal("app.js imports nothing")
	}
	base, _ := url.Parse(e.url + "/static/app.js")
	for _, m := range imports {
		ref, err := url.Parse(m[1])
		if err != nil {
			t.Fatal(err)
		}
		u := base.ResolveReference(ref).String()
		if u != e.url+"/static/wsgate.js" {
			t.Fatalf("app.js imports %s, want the module at /static/wsgate.js", u)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", u, resp.Status)
		}
		for k, want := range map[string]string{
			"Content-Type":            "text/javascript; charset=utf-8",
			"X-Content-Type-Options":  "nosniff",
			"Cache-Control":           "no-cache",
			"Content-Security-Policy": e.s.csp,
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if !bytes.Contains(body, []byte("export class WsgateClient")) {
			t.Error("the module does not export WsgateClient")
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("revalidation with the ETag: %s, want 304", resp.Status)
		}
	}
	if !strings.Contains(e.s.csp, "default-src 'self'") || strings.Contains(e.s.csp, "script-src") {
		t.Errorf("CSP %q: scripts must come from 'self' only (default-src, no script-src override)", e.s.csp)
	}
}

func TestHealthReadinessAndGracefulShutdown(t *testing.T) {
	e := startServer(t, nil)
	alice := e.connect(t, "alice")
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if h, r := status("/healthz"), status("/readyz"); h != 200 || r != 200 {
		t.Fatalf("before shutdown: healthz %d, readyz %d; want 200, 200", h, r)
	}

	code, frames := e.shutdown(t, alice)
	if code != websocket.StatusServiceRestart {
		t.Errorf("close code %v, want 1012", code)
	}
	if !slices.ContainsFunc(frames, func(f frame) bool { return f.Type == "bye" && strings.Contains(string(f.Data), "shutdown") }) {
		t.Errorf("no bye before the close: %+v", frames)
	}
	if h, r := status("/healthz"), status("/readyz"); h != 200 || r != 503 {
		t.Fatalf("after shutdown: healthz %d, readyz %d; want 200, 503", h, r)
	}
}

func TestLogsHoldNeitherTokensNorContent(t *testing.T) {
	e := startServer(t, nil)
	other := startServer(t, nil)
	foreign := other.token(t, "alice")
	_, _, _ = e.dial(t, http.Header{"Authorization": {"Bearer " + foreign}}, "wsgate.v1")
	tok := e.token(t, "alice")
	alice := e.connectWith(t, http.Header{"Authorization": {"Bearer " + tok}}, "alice")
	const content = "the-secret-plans"
	alice.event("message:send", map[string]any{"conversationId": privateConversation, "content": content})
	// Shutdown returns once every connection has been cleaned up, so the
	// disconnect line is in the log by then.
	e.shutdown(t, alice)

	logs := e.logs.String()
	for _, want := range []string{`"event":"unauthorized"`, `"connect"`, `"event_forbidden"`, `"disconnect"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
	for _, secret := range []string{foreign, tok, content} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}

func TestRunRefusesBadStartup(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"short_secret_from_env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"WSGATE_JWT_SECRET": "too-short"}},
		{"wildcard_origins_from_env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"WSGATE_ORIGINS": "*"}},
		{"all_interfaces_from_env_without_origins", nil, map[string]string{"WSGATE_ADDR": ":0"}},
		{"unknown_flag", []string{"-secret", "x"}, nil},
		{"tls_cert_without_key", []string{"-addr", "127.0.0.1:0", "-tls-cert", "cert.pem"}, nil},
		{"tls_key_without_cert_from_env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"WSGATE_TLS_KEY": "key.pem"}},
		{"tls_files_that_do_not_exist", []string{"-addr", "127.0.0.1:0", "-tls-cert", "/nonexistent/cert.pem", "-tls-key", "/nonexistent/key.pem"}, nil},
		{"address_in_use", []string{"-addr", "127.0.0.1:0"}, nil}, // replaced by a taken address below
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests[len(tests)-1].args[1] = taken.Addr().String()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			log := slog.New(slog.DiscardHandler)
			// Each case fails before listening, so run returns at once.
			var stderr strings.Builder
			if err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &out, &stderr, log); err == nil {
				t.Fatal("run started")
			}
			if out.Len() != 0 {
				t.Errorf("printed %q before failing", out.String())
			}
		})
	}
}

// The demo page opens as http://127.0.0.1:PORT or http://localhost:PORT,
// whichever the user typed: both origins may connect by default, and
// nothing else on loopback does.
func TestDefaultOriginsAreBothLoopbackSpellings(t *testing.T) {
	e := startServer(t, nil)
	port := strings.TrimPrefix(e.origin, "http://127.0.0.1:")
	for _, origin := range []string{"http://127.0.0.1:" + port, "http://localhost:" + port} {
		t.Run(strings.TrimPrefix(origin, "http://"), func(t *testing.T) {
			e.connectWith(t, http.Header{"Origin": {origin}, "Authorization": {"Bearer " + e.token(t, "alice")}}, "alice")
		})
	}
	for _, origin := range []string{"http://localhost:1", "https://localhost:" + port, "http://[::1]:" + port} {
		t.Run(strings.TrimPrefix(origin, "http://")+"_is_refused", func(t *testing.T) {
			_, resp, err := e.dial(t, http.Header{"Origin": {origin}, "Authorization": {"Bearer " + e.token(t, "alice")}}, "wsgate.v1")
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("origin %s: %v, want 403", origin, err)
			}
		})
	}
}

func TestDefaultOrigins(t *testing.T) {
	for addr, want := range map[string][]string{
		"127.0.0.1:8080":   {"http://127.0.0.1:8080", "http://localhost:8080"},
		"localhost:8080":   {"http://localhost:8080", "http://127.0.0.1:8080"},
		"[::1]:8080":       {"http://[::1]:8080", "http://localhost:8080"},
		"chat.example:443": {"http://chat.example:443"},
	} {
		got, err := defaultOrigins(addr, false)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("defaultOrigins(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
}
