package socketio

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/guard"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
)

// The origin check applies to every request: a request that carries the
// id of a live session, from a page the allowlist refuses, is refused
// before it reaches the session, which goes on.
func TestOriginOnEveryRequest(t *testing.T) {
	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: []string{"https://app.example"}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Origins = origins }, nil)
	good := http.Header{"Origin": {"https://app.example"}}
	evil := http.Header{"Origin": {"https://app.example.evil.net"}}
	p := e.poll(good)
	if st := p.post(`40{"token":"alice"}`); st != http.StatusOK {
		t.Fatalf("POST %d", st)
	}
	for _, r := range []struct{ method, url string }{
		{http.MethodGet, e.url + "/socket.io/?EIO=4&transport=polling"},
		{http.MethodGet, p.url},
		{http.MethodPost, p.url},
	} {
		if st, body := httpDo(t, r.method, r.url, evil, `42["echo",{"text":"x"}]`); st != http.StatusForbidden || !strings.Contains(body, `"FORBIDDEN"`) {
			t.Fatalf("%s %s from a refused origin: %d %s", r.method, r.url, st, body)
		}
	}
	if _, err := e.tryDial(evil); err == nil {
		t.Fatal("a WebSocket from a refused origin opened")
	}
	// The upgrade of the live session from a refused origin too.
	ws := "ws" + strings.TrimPrefix(p.url, "http")
	ws = strings.Replace(ws, "transport=polling", "transport=websocket", 1)
	if c, resp, err := websocket.Dial(t.Context(), ws, &websocket.DialOptions{HTTPHeader: evil}); err == nil {
		c.CloseNow()
		t.Fatal("an upgrade from a refused origin opened")
	} else if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade from a refused origin: %v", err)
	}
	if _, got := p.get(); len(got) != 1 || !strings.HasPrefix(got[0], `40{"sid":`) {
		t.Fatalf("the session did not go on: %q", got)
	}
}

// Without Options.Origins only loopback pages are allowed, and a request
// without an Origin is refused.
func TestDefaultOriginCheck(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, hdr := range []http.Header{nil, {"Origin": {"https://example.com"}}, {"Origin": {"null"}}} {
		if st, _ := httpDo(t, http.MethodGet, e.url+"/socket.io/?EIO=4&transport=polling", hdr, ""); st != http.StatusForbidden {
			t.Fatalf("Origin %q: %d", hdr.Get("Origin"), st)
		}
	}
	e.poll(http.Header{"Origin": {"http://localhost:3000"}})
	if !strings.Contains(e.logs.String(), `"event":"origin_rejected"`) {
		t.Fatal("no security log line")
	}
}

// A browser's same-origin GET carries no Origin but Sec-Fetch-Site:
// same-origin; its origin is the request's own, which the check judges.
// Other sites' requests without Origin stay refused.
func TestSameOriginRequestsWithoutOrigin(t *testing.T) {
	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: []string{"https://app.example"}})
	if err != nil {
		t.Fatal(err)
	}
	def := newEnv(t, nil, nil)
	listed := newEnv(t, func(o *Options) { o.Origins = origins }, nil)
	handshake := func(e *env, host, site string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/socket.io/?EIO=4&transport=polling", nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var open struct {
			SID string `json:"sid"`
		}
		if resp.StatusCode == http.StatusOK && json.Unmarshal(body[1:], &open) == nil {
			// The page leaves (a POST, which carries its Origin), so that
			// the shutdown does not wait for its next GET.
			origin := "http://" + req.Host
			if e.srv.opts.Origins != nil {
				origin = "https://" + req.Host
			}
			httpDo(t, http.MethodPost, e.url+"/socket.io/?EIO=4&transport=polling&sid="+open.SID, http.Header{"Origin": {origin}}, "1")
		}
		return resp.StatusCode
	}
	for _, tt := range []struct {
		name       string
		e          *env
		host, site string
		want       int
	}{
		{"loopback_page_same_origin", def, "", "same-origin", http.StatusOK},
		{"loopback_page_same_site", def, "", "same-site", http.StatusForbidden},
		{"loopback_page_cross_site", def, "", "cross-site", http.StatusForbidden},
		{"no_fetch_metadata", def, "", "", http.StatusForbidden},
		{"another_host_same_origin", def, "chat.example:80", "same-origin", http.StatusForbidden},
		{"listed_host_behind_a_tls_proxy", listed, "app.example", "same-origin", http.StatusOK},
		{"unlisted_host", listed, "", "same-origin", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := handshake(tt.e, tt.host, tt.site); got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
		})
	}
}

// The throttle counts the requests that open sessions, not the polling
// requests of a session.
func TestThrottleCountsHandshakesOnly(t *testing.T) {
	throttle, err := guard.NewThrottle(guard.ThrottleOptions{Attempts: 2, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Throttle = throttle }, nil)
	p := e.poll(e.header())
	p.post(`40{"token":"alice"}`)
	p.get()
	for i := range 10 {
		p.post(`42` + "1" + `["echo",{"text":"x"}]`)
		if st, _ := p.get(); st != http.StatusOK {
			t.Fatalf("polling request %d of the session: %d", i, st)
		}
	}
	e.poll(e.header())
	if st, _ := httpDo(t, http.MethodGet, e.url+"/socket.io/?EIO=4&transport=polling", e.header(), ""); st != http.StatusTooManyRequests {
		t.Fatalf("third handshake: %d", st)
	}
}

// The per-node limit counts sessions, connected to a namespace or not,
// until they end.
func TestLimitsCountSessions(t *testing.T) {
	limits, err := guard.NewLimits(guard.LimitsOptions{PerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Limits = limits }, nil)
	c := e.dial(e.header()) // joins no namespace
	if st, _ := httpDo(t, http.MethodGet, e.url+"/socket.io/?EIO=4&transport=polling", e.header(), ""); st != http.StatusServiceUnavailable {
		t.Fatalf("second session: %d", st)
	}
	c.send("1") // the client closes its session
	c.closed()
	testutil.Eventually(t, wait, "the slot given back", func() bool { return limits.InFlight() == 0 })
	e.poll(e.header())
}

// CORS: a polling page of an allowed origin gets the headers it needs and
// its preflight an answer, without a session or a throttle token; another
// origin gets neither.
func TestCORS(t *testing.T) {
	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: []string{"https://app.example"}})
	if err != nil {
		t.Fatal(err)
	}
	throttle, err := guard.NewThrottle(guard.ThrottleOptions{Attempts: 1, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.Origins, o.CORS, o.Throttle = origins, origins.Allow, throttle
		// The session the test opens is left to time out at the end.
		o.PingInterval, o.PingTimeout = 100*time.Millisecond, 100*time.Millisecond
	}, nil)
	do := func(method, origin string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, e.url+"/socket.io/?EIO=4&transport=polling", nil)
		req.Header.Set("Origin", origin)
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for range 3 { // preflights take no throttle token
		resp := do(http.MethodOptions, "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type, x-trace")
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Allow-Headers") != "content-type, x-trace" {
			t.Fatalf("preflight: %d %v", resp.StatusCode, h)
		}
	}
	if resp := do(http.MethodOptions, "https://evil.example", "Access-Control-Request-Method", "POST"); resp.StatusCode != http.StatusForbidden ||
		resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight of another origin: %d %v", resp.StatusCode, resp.Header)
	}
	resp := do(http.MethodGet, "https://app.example")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Vary") != "Origin" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}

	if resp := do(http.MethodGet, "https://evil.example"); resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusForbidden ||
		resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin: %d %v", resp.StatusCode, resp.Header)
	}
}

// A packet over its namespace's MaxMessageBytes ends the session, even
// when another namespace's hub allows more (the session's maxPayload).
func TestMessageSizeIsTheNamespaceHubs(t *testing.T) {
	small := newTestHub(t, &testutil.SyncBuffer{}, func(o *hub.Options) { o.MaxMessageBytes = 64 })
	e := newEnv(t, func(o *Options) { o.Namespaces["/small"] = small }, nil)
	if !strings.Contains(e.dial(e.header()).open, `"maxPayload":65536`) {
		t.Fatal("maxPayload is not the largest MaxMessageBytes")
	}
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	c.connect("/small", `{"token":"alice"}`)
	big := strings.Repeat("x", 100)
	c.send(`421["args","` + big + `"]`)
	c.expect(`431["` + big + `"]`)
	c.send(`42/small,2["args","` + big + `"]`)
	if code := c.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("closed with %v", code)
	}
}

// Rate-limit abuse closes the session (1008), as it closes a native
// connection.
func TestRateLimitAbuseClosesTheSession(t *testing.T) {
	e := newEnv(t, nil, func(o *hub.Options) {
		o.MessageRate = hub.Limit{Rate: 1, Burst: 1}
		o.AbuseLimit = 3
	})
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	c.send(`421["echo",{"text":"ok"}]`)
	c.expect(`431[{"text":"ok"}]`)
	c.send(`422["echo",{"text":"over"}]`)
	c.expect(`432[{"error":{"code":"RATE_LIMITED","message":"too many messages"}}]`)
	for range 10 {
		c.send(`42["echo",{"text":"flood"}]`)
	}
	if code := c.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %v", code)
	}
	testutil.Eventually(t, wait, "the connection released", func() bool { return e.main.Connections() == 0 })
	if !strings.Contains(e.logs.String(), `"reason":"rate_limit_abuse"`) {
		t.Fatal("the disconnect's reason is not logged")
	}
}

// A session that does not read has a bounded queue; the hub's slow
// consumer policy closes it (4008) rather than letting it grow.
func TestSlowConsumerClosesTheSession(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SendQueueMessages = 4 }, nil)
	p := e.poll(e.header())
	p.post(`40{"token":"alice"}`) // its CONNECT answer stays queued: nobody polls
	testutil.Eventually(t, wait, "connected", func() bool { return e.main.Connections() == 1 })
	for i := range 10 {
		_ = e.main.ToUser(t.Context(), "alice", "tick", i)
	}
	testutil.Eventually(t, wait, "the connection released", func() bool { return e.main.Connections() == 0 })
	if !strings.Contains(e.logs.String(), `"reason":"slow_consumer"`) {
		t.Fatalf("not closed as a slow consumer:\n%s", e.logs.String())
	}
	if st, _ := httpDo(t, http.MethodGet, p.url, p.hdr, ""); st != http.StatusBadRequest {
		t.Fatalf("the session is still there: %d", st)
	}
}

// The hubs log a Socket.IO connection by its Socket.IO id (the hub's
// connection id), never by the Engine.IO session id, a credential.
func TestLogsCarryTheSocketIOIDNotTheSessionID(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.poll(e.header())
	p.post(`40{"token":"alice"}`)
	_, got := p.get()
	id := strings.TrimSuffix(strings.TrimPrefix(got[0], `40{"sid":"`), `"}`)
	p.post(`42["echo",{}]`)
	p.get()
	p.post("1")
	testutil.Eventually(t, wait, "the disconnect logged", func() bool { return strings.Contains(e.logs.String(), `"msg":"disconnect"`) })
	logs := e.logs.String()
	if strings.Contains(logs, p.sid) {
		t.Fatal("the Engine.IO session id is in the log")
	}
	for _, line := range []string{`"msg":"connect"`, `"msg":"message_invalid"`, `"msg":"disconnect"`} {
		if !strings.Contains(logs, line) {
			t.Fatalf("no %s line", line)
		}
	}
	if strings.Count(logs, `"conn_id":"`+id+`"`) < 3 {
		t.Fatalf("the lines do not carry the Socket.IO id %s:\n%s", id, logs)
	}
}
