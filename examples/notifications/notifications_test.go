package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// received decodes a notification:new frame.
func received(t *testing.T, f frame) notification {
	t.Helper()
	var n notification
	decode(t, f.Data, &n)
	return n
}

func TestTenantNotificationNeverLeavesTheTenant(t *testing.T) {
	e := startServer(t, nil)
	alice, bob, carol, root := e.connect(t, "alice"), e.connect(t, "bob"), e.connect(t, "carol"), e.connect(t, "root")

	before := time.Now().UTC().Add(-time.Second)
	id := e.mustNotify(t, "alice", map[string]any{
		"target": "tenant", "id": "acme",
		"title": "<b>Invoice</b> paid<script>alert(1)</script>", "body": "Tom & Jerry <img src=x onerror=alert(1)>",
	})
	for _, c := range []*client{alice, bob} {
		got := received(t, c.nextEvent(eventNew))
		want := notification{ID: id, Target: "tenant", To: "acme", Title: "Invoice paid", Body: "Tom &amp; Jerry ", From: "alice", CreatedAt: got.CreatedAt}
		if got != want || got.CreatedAt.Before(before) {
			t.Errorf("%s got %+v, want %+v", c.user, got, want)
		}
	}
	carol.expectNoEvent("another tenant")
	root.expectNoEvent("platform account outside the tenant")

	// And the other way round: globex's notification reaches carol only.
	e.mustNotify(t, "root", map[string]any{"target": "tenant", "id": "globex", "title": "globex only"})
	if got := received(t, carol.nextEvent(eventNew)); got.Title != "globex only" || got.From != "root" {
		t.Errorf("carol got %+v", got)
	}
	for _, c := range []*client{alice, bob, root} {
		c.expectNoEvent("globex's notification")
	}
}

func TestUserNotificationReachesEveryConnectionOfTheUserOnce(t *testing.T) {
	e := startServer(t, nil)
	bobTabs := []*client{e.connect(t, "bob"), e.connect(t, "bob"), e.connect(t, "bob")}
	alice, carol := e.connect(t, "alice"), e.connect(t, "carol")

	id := e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "Your report is ready"})
	for i, c := range bobTabs {
		if got := received(t, c.nextEvent(eventNew)); got.ID != id || got.Target != "user" || got.To != "bob" {
			t.Errorf("bob tab %d got %+v", i+1, got)
		}
		c.expectNoEvent("a second copy")
	}
	alice.expectNoEvent("the publisher is not the recipient")
	carol.expectNoEvent("another user")
}

// TestUserNotificationReachesAnyAcceptedUserID: ids outside the room-name
// alphabet, such as Auth0's, authenticate, so the API must reach them too.
func TestUserNotificationReachesAnyAcceptedUserID(t *testing.T) {
	e := startServer(t, nil)
	bob := e.connect(t, "bob")
	for _, id := range []string{
		"auth0|507f1f77bcf86cd799439011", "google-oauth2:1/2", "Jo Doe", "josé", "50%", strings.Repeat("é", 128),
	} {
		t.Run(id[:min(len(id), 20)], func(t *testing.T) {
			c := e.connectAs(t, account{ID: id, Tenant: "acme"})
			n := e.mustNotify(t, "root", map[string]any{"target": "user", "id": id, "title": "for you"})
			if got := received(t, c.nextEvent(eventNew)); got.ID != n || got.To != id {
				t.Errorf("got %+v, want notification %s to %q", got, n, id)
			}
		})
	}
	bob.expectNoEvent("notifications for other users")
}

func TestGlobalNotificationReachesOnlySuperAdmins(t *testing.T) {
	e := startServer(t, nil)
	roots := []*client{e.connect(t, "root"), e.connect(t, "root")}
	others := []*client{e.connect(t, "alice"), e.connect(t, "bob"), e.connect(t, "carol")}

	id := e.mustNotify(t, "root", map[string]any{"target": "global", "title": "Maintenance at 02:00 UTC"})
	for _, c := range roots {
		f := c.nextEvent(eventNew)
		if got := received(t, f); got.ID != id || got.Target != "global" || f.Room != "global" {
			t.Errorf("root got %+v in room %q", got, f.Room)
		}
	}
	for _, c := range others {
		c.expectNoEvent("not a SUPER_ADMIN")
	}
}

func TestClientsCannotJoinOtherRooms(t *testing.T) {
	e := startServer(t, nil)
	bob := e.connect(t, "bob")
	for _, room := range []string{"tenant:globex", "user:alice", "global", "tenant:acme-2", "notifications"} {
		if f := bob.call(map[string]any{"type": "join", "room": room}); f.Type != "error" || f.Code != "FORBIDDEN" {
			t.Errorf("join %s: %+v, want FORBIDDEN", room, f)
		}
	}
}

func TestAPIAuthorization(t *testing.T) {
	e := startServer(t, nil)
	other := startServer(t, nil)
	// Watchers in every audience: nothing refused may reach any of them.
	watchers := []*client{e.connect(t, "alice"), e.connect(t, "bob"), e.connect(t, "carol"), e.connect(t, "root")}
	const refused = "must-not-arrive"
	body := func(target, id string) map[string]any {
		b := map[string]any{"target": target, "title": refused}
		if id != "" {
			b["id"] = id
		}
		return b
	}
	tests := []struct {
		name   string
		caller string // seeded user, or a raw Authorization value with a space
		body   map[string]any
		want   int
		code   string
	}{
		{"plain_user_may_not_notify_own_tenant", "bob", body("tenant", "acme"), 403, "FORBIDDEN"},
		{"plain_user_may_not_notify_a_colleague", "bob", body("user", "alice"), 403, "FORBIDDEN"},
		{"plain_user_may_not_notify_global", "carol", body("global", ""), 403, "FORBIDDEN"},
		{"tenant_admin_may_not_notify_another_tenant", "alice", body("tenant", "globex"), 403, "FORBIDDEN"},
		{"tenant_admin_may_not_notify_a_user_of_another_tenant", "alice", body("user", "carol"), 403, "FORBIDDEN"},
		{"tenant_admin_may_not_probe_unknown_users", "alice", body("user", "mallory"), 403, "FORBIDDEN"},
		{"tenant_admin_may_not_notify_platform_accounts", "alice", body("user", "root"), 403, "FORBIDDEN"},
		{"tenant_admin_may_not_notify_global", "alice", body("global", ""), 403, "FORBIDDEN"},
		{"no_token_is_unauthorized", "", body("tenant", "acme"), 401, "UNAUTHORIZED"},
		{"garbage_token_is_unauthorized", "Bearer not.a.jwt", body("tenant", "acme"), 401, "UNAUTHORIZED"},
		{"token_of_another_server_is_unauthorized", "Bearer " + other.token(t, "root"), body("global", ""), 401, "UNAUTHORIZED"},
		{"basic_credentials_are_unauthorized", "Basic YWxpY2U6eA==", body("tenant", "acme"), 401, "UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := tt.caller
			if auth != "" && !strings.Contains(auth, " ") {
				auth = "Bearer " + e.token(t, auth)
			}
			req := jsonRequest(t, e.url+"/api/notifications", tt.body)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			status, resp := e.do(t, req)
			if status != tt.want || resp["code"] != tt.code || resp["message"] == "" {
				t.Fatalf("got %d %v, want %d %s", status, resp, tt.want, tt.code)
			}
		})
	}
	t.Run("the_token_cookie_is_not_accepted", func(t *testing.T) {
		// CSRF: a browser attaches cookies to cross-site requests, so the
		// API never reads one, whatever its name.
		req := jsonRequest(t, e.url+"/api/notifications", body("tenant", "acme"))
		for _, name := range []string{"wsgate_token", "token", "access_token"} {
			req.AddCookie(&http.Cookie{Name: name, Value: e.token(t, "alice")})
		}
		if status, resp := e.do(t, req); status != 401 || resp["code"] != "UNAUTHORIZED" {
			t.Fatalf("got %d %v, want 401", status, resp)
		}
	})
	t.Run("allowed_publishers", func(t *testing.T) {
		for _, ok := range []struct {
			caller string
			body   map[string]any
		}{
			{"alice", map[string]any{"target": "tenant", "id": "acme", "title": "ok"}},
			{"alice", map[string]any{"target": "user", "id": "bob", "title": "ok"}},
			{"root", map[string]any{"target": "tenant", "id": "globex", "title": "ok"}},
			{"root", map[string]any{"target": "user", "id": "carol", "title": "ok"}},
			{"root", map[string]any{"target": "user", "id": "someone-the-directory-does-not-know", "title": "ok"}},
			{"root", map[string]any{"target": "global", "title": "ok"}},
		} {
			e.mustNotify(t, ok.caller, ok.body)
		}
	})
	for _, c := range watchers {
		for _, f := range c.sync() {
			if f.Event == eventNew && strings.Contains(string(f.Data), refused) {
				t.Errorf("%s received a refused notification: %s", c.user, f.Data)
			}
		}
	}
}

func TestAPIValidation(t *testing.T) {
	e := startServer(t, nil)
	root := e.connect(t, "root")
	admin := e.token(t, "root")
	tests := []struct {
		name        string
		contentType string
		body        string
		want        int
		code        string
	}{
		{"missing_target", "application/json", `{"title":"x"}`, 400, "BAD_REQUEST"},
		{"unknown_target", "application/json", `{"target":"all","title":"x"}`, 400, "BAD_REQUEST"},
		{"user_without_id", "application/json", `{"target":"user","title":"x"}`, 400, "BAD_REQUEST"},
		{"tenant_without_id", "application/json", `{"target":"tenant","id":"","title":"x"}`, 400, "BAD_REQUEST"},
		{"global_with_id", "application/json", `{"target":"global","id":"acme","title":"x"}`, 400, "BAD_REQUEST"},
		{"id_with_a_control_character", "application/json", `{"target":"user","id":"bob\n","title":"x"}`, 400, "BAD_REQUEST"},
		{"tenant_id_with_a_control_character", "application/json", `{"target":"tenant","id":"acme\u0000","title":"x"}`, 400, "BAD_REQUEST"},
		{"id_over_256_bytes", "application/json", `{"target":"user","id":"` + strings.Repeat("b", 257) + `","title":"x"}`, 400, "BAD_REQUEST"},
		{"id_of_129_two_byte_characters", "application/json", `{"target":"user","id":"` + strings.Repeat("é", 129) + `","title":"x"}`, 400, "BAD_REQUEST"},
		{"missing_title", "application/json", `{"target":"global"}`, 400, "BAD_REQUEST"},
		{"title_over_200_characters", "application/json", `{"target":"global","title":"` + strings.Repeat("é", 201) + `"}`, 400, "BAD_REQUEST"},
		{"body_over_2000_characters", "application/json", `{"target":"global","title":"x","body":"` + strings.Repeat("a", 2001) + `"}`, 400, "BAD_REQUEST"},
		{"markup_only_title", "application/json", `{"target":"global","title":"<script>alert(1)</script>"}`, 400, "BAD_REQUEST"},
		{"unknown_field", "application/json", `{"target":"global","title":"x","priority":"high"}`, 400, "BAD_REQUEST"},
		{"wrong_type", "application/json", `{"target":"global","title":42}`, 400, "BAD_REQUEST"},
		{"not_json", "application/json", `target=global&title=x`, 400, "BAD_REQUEST"},
		{"trailing_data", "application/json", `{"target":"global","title":"x"}{}`, 400, "BAD_REQUEST"},
		{"an_array", "application/json", `[{"target":"global","title":"x"}]`, 400, "BAD_REQUEST"},
		{"form_content_type", "application/x-www-form-urlencoded", `{"target":"global","title":"x"}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"text_plain_content_type", "text/plain", `{"target":"global","title":"x"}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"oversized_body", "application/json", `{"target":"global","title":"x","body":"` + strings.Repeat("a", 40<<10) + `"}`, 413, "PAYLOAD_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp := e.post(t, admin, tt.contentType, []byte(tt.body))
			if status != tt.want || resp["code"] != tt.code || resp["message"] == "" {
				t.Fatalf("got %d %v, want %d %s", status, resp, tt.want, tt.code)
			}
		})
	}
	root.expectNoEvent("every request was invalid")

	for _, ok := range []struct{ name, body string }{
		{"title_of_200_characters", `{"target":"global","title":"` + strings.Repeat("é", 200) + `"}`},
		{"body_of_2000_characters", `{"target":"global","title":"x","body":"` + strings.Repeat("é", 2000) + `"}`},
		{"charset_parameter", `{"target":"global","title":"x"}`},
	} {
		t.Run(ok.name+"_is_accepted", func(t *testing.T) {
			if status, resp := e.post(t, admin, "application/json; charset=utf-8", []byte(ok.body)); status != 202 {
				t.Fatalf("got %d %v", status, resp)
			}
			root.nextEvent(eventNew)
		})
	}
}

func TestMarkReadUpdatesTheUsersOtherTabs(t *testing.T) {
	e := startServer(t, nil)
	tab1, tab2, tab3 := e.connect(t, "bob"), e.connect(t, "bob"), e.connect(t, "bob")
	alice := e.connect(t, "alice")

	id := e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "hello"})
	for _, c := range []*client{tab1, tab2, tab3} {
		c.nextEvent(eventNew)
	}
	reply := tab1.event(eventMarkRead, map[string]any{"notificationId": id})
	if reply.Type != "ack" {
		t.Fatalf("mark-read: %s %s", reply.Code, reply.Message)
	}
	var ack readNotice
	decode(t, reply.Data, &ack)
	if ack.NotificationID != id || ack.ReadAt.IsZero() {
		t.Fatalf("ack %s", reply.Data)
	}
	for _, c := range []*client{tab2, tab3} {
		var got readNotice
		decode(t, c.nextEvent(eventRead).Data, &got)
		if got != ack {
			t.Errorf("other tab got %+v, want %+v", got, ack)
		}
	}
	tab1.expectNoEvent("the sending tab already knows")
	alice.expectNoEvent("another user's read marks")
}

func TestMarkReadIsValidated(t *testing.T) {
	e := startServer(t, nil)
	tab1, tab2 := e.connect(t, "bob"), e.connect(t, "bob")
	tests := []struct {
		name string
		data any
		want string
	}{
		{"missing_id", map[string]any{}, "INVALID_MESSAGE"},
		{"id_is_not_a_uuid", map[string]any{"notificationId": "42"}, "INVALID_MESSAGE"},
		{"id_is_an_injection", map[string]any{"notificationId": "' OR 1=1 --"}, "INVALID_MESSAGE"},
		{"id_has_the_wrong_type", map[string]any{"notificationId": 42}, "INVALID_MESSAGE"},
		{"unknown_field", map[string]any{"notificationId": newUUID(), "all": true}, "INVALID_MESSAGE"},
		{"data_is_not_an_object", "read everything", "INVALID_MESSAGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f := tab1.event(eventMarkRead, tt.data); f.Type != "error" || f.Code != tt.want {
				t.Fatalf("got %+v, want %s", f, tt.want)
			}
		})
	}
	tab2.expectNoEvent("every mark was invalid")
}

func TestMarkReadIsRateLimited(t *testing.T) {
	e := startServer(t, nil)
	tab1, tab2 := e.connect(t, "bob"), e.connect(t, "bob")
	// The burst is 10 at 5/s: thirty back-to-back marks must hit the limit
	// however slow the machine is, yet stay far below the abuse threshold
	// that closes the connection.
	acked, limited := 0, 0
	for range 30 {
		switch f := tab1.event(eventMarkRead, map[string]any{"notificationId": newUUID()}); {
		case f.Type == "ack":
			acked++
		case f.Code == "RATE_LIMITED":
			limited++
		default:
			t.Fatalf("unexpected answer %+v", f)
		}
	}
	if limited == 0 || acked < markReadLimit.Burst {
		t.Fatalf("%d acked, %d limited; want at least %d acked and some limited", acked, limited, markReadLimit.Burst)
	}
	// Exactly the accepted marks reached the other tab.
	got := 0
	for _, f := range tab2.sync() {
		if f.Event == eventRead {
			got++
		}
	}
	if got != acked {
		t.Errorf("the other tab got %d read events for %d accepted marks", got, acked)
	}
	// Another connection of the same user has its own budget.
	if f := tab2.event(eventMarkRead, map[string]any{"notificationId": newUUID()}); f.Type != "ack" {
		t.Errorf("tab2's first mark: %+v", f)
	}
}

func TestMetricsShowDeliveries(t *testing.T) {
	e := startServer(t, nil)
	bob1, bob2 := e.connect(t, "bob"), e.connect(t, "bob")
	const out = "wsgate_messages_out_total"
	before := e.metric(t, out)
	if got := e.metric(t, "wsgate_connections"); got != 2 {
		t.Errorf("wsgate_connections = %v, want 2", got)
	}
	e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "count me"})
	bob1.nextEvent(eventNew)
	bob2.nextEvent(eventNew)
	// The in-memory broker counts deliveries before the API answers.
	if after := e.metric(t, out); after != before+2 {
		t.Errorf("%s went from %v to %v, want +2", out, before, after)
	}
	bob1.event(eventMarkRead, map[string]any{"notificationId": newUUID()})
	if got := e.metric(t, `wsgate_messages_in_total{event="notification:mark-read",outcome="ok"}`); got != 1 {
		t.Errorf("messages_in for mark-read = %v, want 1", got)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	e := startServer(t, nil)
	bearer := http.Header{"Authorization": {"Bearer " + e.token(t, "bob")}}
	withOrigin := func(o string) http.Header {
		h := bearer.Clone()
		h.Set("Origin", o)
		return h
	}
	tests := []struct {
		name   string
		header http.Header
		want   int
		code   string
	}{
		{"no_token_is_unauthorized", nil, 401, "UNAUTHORIZED"},
		{"foreign_origin_is_forbidden", withOrigin("https://evil.example"), 403, "FORBIDDEN"},
		{"lookalike_origin_is_forbidden", withOrigin(e.origin + ".evil.example"), 403, "FORBIDDEN"},
		{"missing_origin_is_forbidden", withOrigin(""), 403, "FORBIDDEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := e.dial(t, tt.header)
			if err == nil {
				ws.CloseNow()
				t.Fatal("the handshake succeeded")
			}
			if resp == nil || resp.StatusCode != tt.want || !strings.Contains(describe(resp), tt.code) {
				t.Fatalf("got %s, want %d %s", describe(resp), tt.want, tt.code)
			}
		})
	}
	t.Run("sixth_connection_of_a_user_is_refused", func(t *testing.T) {
		for range 5 {
			e.connect(t, "carol")
		}
		_, resp, err := e.dial(t, http.Header{"Authorization": {"Bearer " + e.token(t, "carol")}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("got %s, want 429 with Retry-After", describe(resp))
		}
	})
}

func TestAPIIsRateLimitedPerIP(t *testing.T) {
	e := startServer(t, func(c *config) { c.APIRate.Attempts, c.APIRate.Window = 3, time.Hour })
	for i := range 3 {
		// Refused for want of a token, yet counted.
		if status, _ := e.post(t, "", "application/json", []byte(`{}`)); status != 401 {
			t.Fatalf("request %d: %d, want 401", i+1, status)
		}
	}
	req := jsonRequest(t, e.url+"/api/notifications", map[string]any{"target": "global", "title": "x"})
	req.Header.Set("Authorization", "Bearer "+e.token(t, "root"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth request: %s, want 429 with Retry-After", resp.Status)
	}
}

func TestTenantPresence(t *testing.T) {
	e := startServer(t, nil)
	e.connect(t, "alice")
	e.connect(t, "bob")
	e.connect(t, "bob")
	e.connect(t, "carol")
	tests := []struct {
		caller, tenant string
		want           int
		users          string
	}{
		{"alice", "acme", 200, "alice,bob"},
		{"root", "globex", 200, "carol"},
		{"root", "initech", 200, ""},
		{"alice", "globex", 403, ""},
		{"bob", "acme", 403, ""},
		{"root", "org|7:x/y", 200, ""}, // any tenant id a token may carry
		{"root", strings.Repeat("t", 257), 400, ""},
		{"root", "acme\x01", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.caller+"_asks_for_"+tt.tenant[:min(len(tt.tenant), 12)], func(t *testing.T) {
			status, users := e.online(t, tt.caller, tt.tenant)
			if status != tt.want || users != tt.users {
				t.Fatalf("got %d %q, want %d %q", status, users, tt.want, tt.users)
			}
		})
	}
}

func TestHealthReadinessAndGracefulShutdown(t *testing.T) {
	e := startServer(t, nil)
	bob := e.connect(t, "bob")
	if h, _ := e.get(t, "/healthz"); h != 200 {
		t.Fatalf("healthz %d", h)
	}
	if r, body := e.get(t, "/readyz"); r != 200 || !strings.Contains(body, "ready") {
		t.Fatalf("readyz %d %s", r, body)
	}
	done := make(chan error, 1)
	go func() { done <- e.s.Shutdown(t.Context()) }()
	code, frames := bob.expectClose()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if code != websocket.StatusServiceRestart {
		t.Errorf("close code %v, want 1012", code)
	}
	if !slices.ContainsFunc(frames, func(f frame) bool { return f.Type == "bye" }) {
		t.Errorf("no bye before the close: %+v", frames)
	}
	if r, _ := e.get(t, "/readyz"); r != 503 {
		t.Errorf("readyz after shutdown %d, want 503", r)
	}
	if status, resp := e.notify(t, "root", map[string]any{"target": "global", "title": "x"}); status != 503 || resp["code"] != "UNAVAILABLE" {
		t.Errorf("publishing after shutdown: %d %v, want 503", status, resp)
	}
}

func TestLogsHoldNeitherTokensNorContent(t *testing.T) {
	e := startServer(t, nil)
	other := startServer(t, nil)
	foreign := other.token(t, "root")
	e.post(t, foreign, "application/json", []byte(`{"target":"global","title":"x"}`))
	bob := e.connect(t, "bob")
	const title, text = "the-secret-title", "the-secret-body"
	e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": title, "body": text})
	bob.nextEvent(eventNew)
	e.notify(t, "bob", map[string]any{"target": "tenant", "id": "acme", "title": title})

	logs := e.logs.String()
	for _, want := range []string{`"api_auth_failed"`, `"connect"`, `"notification_published"`, `"api_forbidden"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
	// Every JWT starts with the encoding of `{"`.
	for _, secret := range []string{"eyJ", title, text} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}
