package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
)

func TestService(t *testing.T) {
	p := newIDP(t)

	t.Run("members_only_rooms_and_a_validated_comment", func(t *testing.T) {
		n := startNode(t, p, newProjects(demoProjects), "")
		alice, bob, carol := n.connect(t, "alice"), n.connect(t, "bob"), n.connect(t, "carol")
		for _, u := range []*user{alice, bob} {
			if err := u.join(projectRoom(p1)); err != nil {
				t.Fatalf("member's join: %v", err)
			}
		}
		if code := serverCode(carol.join(projectRoom(p1))); code != "FORBIDDEN" {
			t.Fatalf("a stranger's join answered %q, want FORBIDDEN", code)
		}
		if code := serverCode(second(alice.comment("not-a-uuid", "hi"))); code != "INVALID_MESSAGE" {
			t.Fatalf("comment with a bad project id answered %q", code)
		}
		if code := serverCode(second(bob.comment(p2, "hi"))); code != "FORBIDDEN" {
			t.Fatalf("comment outside the member's rooms answered %q", code)
		}
		ack, err := alice.comment(p1, "<script>x()</script><b>ship</b> it")
		if err != nil || ack.ID == "" {
			t.Fatalf("comment: %+v, %v", ack, err)
		}
		var got CommentEvent
		if err := bob.next("comment").Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.Text != "ship it" || got.Author != "alice" || got.ID != ack.ID {
			t.Fatalf("bob received %+v", got)
		}
	})

	t.Run("rest_endpoints_push_and_manage_membership", func(t *testing.T) {
		n := startNode(t, p, newProjects(demoProjects), "")
		alice, carol := n.connect(t, "alice"), n.connect(t, "carol")
		if err := alice.join(projectRoom(p1)); err != nil {
			t.Fatal(err)
		}
		if s := n.call(t, "POST", "/api/projects/"+p1+"/announcements", "", map[string]string{"text": "x"}); s != http.StatusUnauthorized {
			t.Fatalf("without a token: %d", s)
		}
		if s := n.call(t, "POST", "/api/projects/"+p1+"/announcements", "carol", map[string]string{"text": "x"}); s != http.StatusForbidden {
			t.Fatalf("by a non-member: %d", s)
		}
		if s := n.call(t, "POST", "/api/projects/"+p1+"/members", "alice", map[string]any{"userId": "carol", "role": "x"}); s != http.StatusBadRequest {
			t.Fatalf("unknown field: %d", s)
		}
		if s := n.call(t, "POST", "/api/projects/"+p1+"/members", "alice", map[string]string{"userId": "carol"}); s != http.StatusNoContent {
			t.Fatalf("add member: %d", s)
		}
		carol.next("project:added")
		n.inRoom(t, projectRoom(p1), "carol", true)
		if s := n.call(t, "POST", "/api/projects/"+p1+"/announcements", "carol", map[string]string{"text": "welcome"}); s != http.StatusAccepted {
			t.Fatalf("announce: %d", s)
		}
		for _, u := range []*user{alice, carol} {
			if ev := u.next("announcement"); !strings.Contains(string(ev.Data), `"text":"welcome"`) {
				t.Fatalf("announcement %s", ev.Data)
			}
		}
		if s := n.call(t, "DELETE", "/api/projects/"+p1+"/members/carol", "alice", nil); s != http.StatusNoContent {
			t.Fatalf("remove member: %d", s)
		}
		n.inRoom(t, projectRoom(p1), "carol", false)
		if code := serverCode(carol.join(projectRoom(p1))); code != "FORBIDDEN" {
			t.Fatalf("a removed member's join answered %q", code)
		}
	})

	t.Run("origin_allowlist_metrics_and_graceful_shutdown", func(t *testing.T) {
		n := startNode(t, p, newProjects(demoProjects), "")
		n.connect(t, "alice")
		req, _ := http.NewRequest("GET", n.srv.URL+"/ws", nil)
		req.Header = http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Protocol": {"wsgate.v1"},
			"Origin": {"https://evil.example.net"}, "Authorization": {"Bearer " + p.token(t, "alice")},
		}
		resp, err := n.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign origin: %d", resp.StatusCode)
		}
		status, body := n.get(t, "/metrics")
		for _, want := range []string{"wsgate_connections 1", `wsgate_handshake_refusals_total{reason="origin_rejected"} 1`, "wsgate_ready 1", "go_goroutines"} {
			if status != http.StatusOK || !strings.Contains(body, want) {
				t.Fatalf("/metrics (%d) lacks %q", status, want)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.svc.shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if status, _ := n.get(t, "/readyz"); status != http.StatusServiceUnavailable {
			t.Fatalf("readyz after shutdown: %d", status)
		}
	})
}

func TestTwoNodesOnRedis(t *testing.T) {
	p := newIDP(t)
	rds := redistest.Start(t)
	members := newProjects(demoProjects) // the database both nodes read
	a := startNode(t, p, members, rds.Addr())
	b := startNode(t, p, members, rds.Addr())
	alice, carol := a.connect(t, "alice"), a.connect(t, "carol")
	bob := b.connect(t, "bob")
	for _, u := range []*user{alice, bob} {
		if err := u.join(projectRoom(p1)); err != nil {
			t.Fatal(err)
		}
	}

	// A comment on node A reaches bob on node B.
	if _, err := alice.comment(p1, "from A"); err != nil {
		t.Fatal(err)
	}
	if ev := bob.next("comment"); !strings.Contains(string(ev.Data), `"text":"from A"`) {
		t.Fatalf("bob got %s", ev.Data)
	}

	// A REST call on node B adds carol, whose connection is on node A.
	if s := b.call(t, "POST", "/api/projects/"+p1+"/members", "bob", map[string]string{"userId": "carol"}); s != http.StatusNoContent {
		t.Fatalf("add member on B: %d", s)
	}
	carol.next("project:added")
	a.inRoom(t, projectRoom(p1), "carol", true)
	if s := b.call(t, "POST", "/api/projects/"+p1+"/announcements", "bob", map[string]string{"text": "both nodes"}); s != http.StatusAccepted {
		t.Fatalf("announce on B: %d", s)
	}
	for _, u := range []*user{alice, carol, bob} {
		if ev := u.next("announcement"); !strings.Contains(string(ev.Data), `"text":"both nodes"`) {
			t.Fatalf("announcement %s", ev.Data)
		}
	}
	for _, n := range []*node{a, b} {
		if status, _ := n.get(t, "/readyz"); status != http.StatusOK {
			t.Fatalf("readyz %d with Redis up", status)
		}
	}
}
