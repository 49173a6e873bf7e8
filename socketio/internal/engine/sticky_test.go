package engine

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/socketio/internal/eio"
)

// TestStickyCookieRoutesPollingToItsNode puts two nodes behind a proxy
// that routes by the sticky cookie (and round-robin without it), as a
// load balancer would: a client that keeps the cookie reaches its session
// on every request; one that drops it lands on the other node half the
// time, where its sid is unknown.
func TestStickyCookieRoutesPollingToItsNode(t *testing.T) {
	const cookie = "wsgate_node"
	nodes := map[string]*url.URL{}
	var order []string
	for _, id := range []string{"node-a", "node-b"} {
		srv, err := New(Options{PingInterval: time.Minute, Cookie: Cookie{Name: cookie, Value: id},
			Open: func(s *Session, _ *http.Request) (Receiver, error) {
				return &recorder{s: s, echo: true, closed: make(chan CloseInfo, 1)}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(strings.TrimSuffix(newHTTP(t, srv), "/engine.io/"))
		nodes[id] = u
		order = append(order, id)
	}
	var next atomic.Uint32
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		id := order[next.Add(1)%2]
		if c, err := pr.In.Cookie(cookie); err == nil && nodes[c.Value] != nil {
			id = c.Value
		}
		pr.SetURL(nodes[id])
	}}
	lb := httptest.NewServer(proxy)
	defer lb.Close()

	session := func(client *http.Client) (string, func(method, body string) (int, string)) {
		do := func(method, query, body string) (int, string) {
			req, _ := http.NewRequest(method, lb.URL+"/engine.io/?"+query, strings.NewReader(body))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		_, open := do(http.MethodGet, "EIO=4&transport=polling", "")
		hs, err := eio.ParseOpen([]byte(strings.TrimPrefix(open, "0")))
		if err != nil {
			t.Fatal(err)
		}
		return hs.SID, func(method, body string) (int, string) { return do(method, pollQuery(hs.SID), body) }
	}

	t.Run("with_the_cookie_every_request_reaches_the_session", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		_, do := session(&http.Client{Jar: jar})
		for i := range 10 {
			if status, body := do(http.MethodPost, "4m"); status != 200 || body != "ok" {
				t.Fatalf("POST %d: %d %q", i, status, body)
			}
			if status, body := do(http.MethodGet, ""); status != 200 || body != "4m" {
				t.Fatalf("GET %d: %d %q", i, status, body)
			}
		}
	})
	t.Run("without_it_requests_reach_the_wrong_node", func(t *testing.T) {
		_, do := session(&http.Client{})
		unknown := 0
		for range 10 {
			if status, _ := do(http.MethodPost, "4m"); status == http.StatusBadRequest {
				unknown++
			}
		}
		if unknown == 0 {
			t.Fatal("every request found the session without the cookie: the test routes nothing")
		}
	})
}
