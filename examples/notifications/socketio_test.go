package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// pollSession is a raw socket.io-client session over long-polling, as a
// browser without WebSocket (or before its upgrade) runs it.
type pollSession struct {
	t   *testing.T
	e   *testEnv
	url string
	hdr http.Header
}

func (e *testEnv) pollSocketIO(t *testing.T) *pollSession {
	t.Helper()
	p := &pollSession{t: t, e: e, hdr: http.Header{"Origin": {e.origin}}}
	st, open := p.do(http.MethodGet, e.url+"/socket.io/?EIO=4&transport=polling", "")
	if st != http.StatusOK || !strings.HasPrefix(open, "0{") {
		t.Fatalf("handshake: %d %s", st, open)
	}
	var hs struct {
		SID string `json:"sid"`
	}
	decode(t, json.RawMessage(open[1:]), &hs)
	p.url = e.url + "/socket.io/?EIO=4&transport=polling&sid=" + hs.SID
	t.Cleanup(func() { p.do(http.MethodPost, p.url, "1") })
	return p
}

func (p *pollSession) do(method, url, body string) (int, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.Header = p.hdr.Clone()
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *pollSession) post(body string) {
	p.t.Helper()
	if st, got := p.do(http.MethodPost, p.url, body); st != http.StatusOK {
		p.t.Fatalf("POST %q: %d %s", body, st, got)
	}
}

// next returns the next packet that is not a ping (pings are answered).
func (p *pollSession) next() string {
	p.t.Helper()
	for range maxFrames {
		st, body := p.do(http.MethodGet, p.url, "")
		if st != http.StatusOK {
			p.t.Fatalf("GET: %d %s", st, body)
		}
		for _, pkt := range strings.Split(body, "\x1e") {
			if pkt == "2" {
				p.post("3")
				continue
			}
			return pkt // the tests read one packet per GET
		}
	}
	p.t.Fatal("only pings")
	return ""
}

// The second audit's frontends use the /notifications namespace over
// socket.io-client: the same hub, its automatic rooms, its API and its
// events.
func TestSocketIONotificationsNamespace(t *testing.T) {
	e := startServer(t, nil)
	bob := e.pollSocketIO(t)
	bob.post(`40/notifications,{"token":"` + e.token(t, "bob") + `"}`)
	if got := bob.next(); !strings.HasPrefix(got, `40/notifications,{"sid":"`) {
		t.Fatalf("CONNECT: %s", got)
	}
	native := e.connect(t, "bob") // the same user on the native protocol
	id := e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "<b>Invoice</b> paid"})
	got := bob.next()
	rest, ok := strings.CutPrefix(got, `42/notifications,["notification:new",`)
	if !ok {
		t.Fatalf("notification: %s", got)
	}
	var n notification
	decode(t, json.RawMessage(strings.TrimSuffix(rest, "]")), &n)
	if n.ID != id || n.Title != "Invoice paid" {
		t.Fatalf("notification %+v", n)
	}
	native.nextEvent(eventNew)

	bob.post(`42/notifications,1["` + eventMarkRead + `",{"notificationId":"` + id + `"}]`)
	ack := bob.next()
	if !strings.HasPrefix(ack, `43/notifications,1[{"notificationId":"`+id+`","readAt":"`) {
		t.Fatalf("mark-read ack: %s", ack)
	}
	var read readNotice
	decode(t, native.nextEvent(eventRead).Data, &read)
	if read.NotificationID != id {
		t.Fatalf("the native tab got %+v", read)
	}
	bob.post(`42/notifications,2["join","tenant:globex"]`)
	if got := bob.next(); got != `43/notifications,2[{"error":{"code":"FORBIDDEN","message":"not allowed to join this room"}}]` {
		t.Fatalf("join of another tenant: %s", got)
	}
	bob.post(`40`)
	if got := bob.next(); got != `44{"message":"Invalid namespace"}` {
		t.Fatalf("CONNECT to /: %s", got)
	}
}
