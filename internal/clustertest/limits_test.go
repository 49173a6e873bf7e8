package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter/redis"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/redistest"
)

// sharedLimits starts a node whose per-user limit and presence live in
// the Redis at addr, as every node of a deployment does.
func sharedLimits(t *testing.T, name, addr string, perUser int, ttl time.Duration) *node {
	t.Helper()
	// Created before the node, so that t.Cleanup closes them after it.
	limiter, err := redis.NewLimiter(redis.LimiterOptions{Addrs: []string{addr}, PerUser: perUser, LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { limiter.Close() })
	presence, err := redis.NewPresence(redis.PresenceOptions{Addrs: []string{addr}, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { presence.Close() })
	return startNode(t, name, redis.Options{Addrs: []string{addr}}, func(o *hub.Options) {
		o.Admit, o.Presence = limiter.Admit, presence
	})
}

// refusal dials url as user and returns the HTTP refusal, or an error if
// the upgrade succeeded.
func refusal(t *testing.T, url, user string) (status int, code string, retryAfter string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := dial(ctx, url, token(t, identity{user: user}))
	if err == nil {
		ws.CloseNow()
		return 0, "", "", errors.New("the upgrade succeeded")
	}
	if resp == nil {
		return 0, "", "", err
	}
	var body struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Code, resp.Header.Get("Retry-After"), nil
}

// presence returns the users n's hub sees in room, sorted.
func presence(t *testing.T, n *node, room string) string {
	t.Helper()
	users, err := n.hub.Presence(t.Context(), room)
	if err != nil {
		t.Fatalf("presence on %s: %v", n.name, err)
	}
	slices.Sort(users)
	return strings.Join(users, ",")
}

// TestUserLimitAndPresenceSpanNodes: a user holding the maximum on node A
// is refused on node B with 429 before the upgrade, and admitted there
// once a connection on A ends; B's presence lists users connected to A.
func TestUserLimitAndPresenceSpanNodes(t *testing.T) {
	srv := redistest.Start(t)
	const perUser = 3
	a := sharedLimits(t, "a", srv.Addr(), perUser, 0)
	b := sharedLimits(t, "b", srv.Addr(), perUser, 0)

	var onA []*client
	for range perUser {
		onA = append(onA, connect(t, a.srv.URL, "a", identity{user: "max"}, "room:lobby"))
	}
	status, code, retry, err := refusal(t, b.srv.URL, "max")
	if err != nil || status != http.StatusTooManyRequests || code != "CONNECTION_LIMIT_EXCEEDED" || retry == "" {
		t.Fatalf("connection %d on b: %d %s Retry-After %q (%v), want 429 CONNECTION_LIMIT_EXCEEDED with Retry-After", perUser+1, status, code, retry, err)
	}
	// Another user is not affected.
	other := connect(t, b.srv.URL, "b", identity{user: "min"}, "room:lobby")

	eventually(t, "b sees both users of room:lobby", func() error {
		if got := presence(t, b, "room:lobby"); got != "max,min" {
			return fmt.Errorf("presence %q", got)
		}
		return nil
	})

	onA[0].close()
	eventually(t, "b admits max once a slot on a is free", func() error {
		_, _, _, err := refusal(t, b.srv.URL, "max")
		if err == nil {
			return errors.New("still refused")
		}
		return nil
	})
	other.close()
	eventually(t, "presence follows the disconnect", func() error {
		if got := presence(t, a, "room:lobby"); got != "max" {
			return fmt.Errorf("presence %q", got)
		}
		return nil
	})
}

// TestKilledNodeReleasesLeasesAndPresence runs a node in a child process,
// connects a user to it up to the limit, and SIGKILLs it: nothing is
// cleaned up, so the user stays refused elsewhere until the leases
// expire, which they must within the TTL; the presence entries likewise.
func TestKilledNodeReleasesLeasesAndPresence(t *testing.T) {
	srv := redistest.Start(t)
	const (
		ttl     = 2 * time.Second
		perUser = 2
	)
	doomed := startChild(t, envRedis+"="+srv.Addr(), envProbe+"=1s",
		envLeaseTTL+"="+ttl.String(), envPerUser+"="+fmt.Sprint(perUser))
	survivor := sharedLimits(t, "survivor", srv.Addr(), perUser, ttl)

	var onDoomed []*client
	for range perUser {
		onDoomed = append(onDoomed, connect(t, doomed.url, "doomed", identity{user: "crash"}, "room:lobby"))
	}
	eventually(t, "the survivor sees the user of the doomed node", func() error {
		if got := presence(t, survivor, "room:lobby"); got != "crash" {
			return fmt.Errorf("presence %q", got)
		}
		return nil
	})
	if status, code, _, err := refusal(t, survivor.srv.URL, "crash"); err != nil || status != http.StatusTooManyRequests {
		t.Fatalf("before the kill: %d %s %v, want 429", status, code, err)
	}

	doomed.kill()
	killed := time.Now()
	// Still refused right after: a dead node removes nothing; the leases
	// have to expire.
	if status, _, _, err := refusal(t, survivor.srv.URL, "crash"); err != nil || status != http.StatusTooManyRequests {
		t.Fatalf("right after the kill: %d %v, want 429 until the leases expire", status, err)
	}
	for _, c := range onDoomed {
		c.waitClosed()
	}

	var admittedAfter, goneAfter time.Duration
	eventually(t, "the user is admitted on the survivor", func() error {
		if _, _, _, err := refusal(t, survivor.srv.URL, "crash"); err == nil {
			return errors.New("still refused")
		}
		admittedAfter = time.Since(killed)
		return nil
	})
	eventually(t, "the doomed node's presence entries expire", func() error {
		if got := presence(t, survivor, "room:lobby"); got != "" {
			return fmt.Errorf("presence %q", got)
		}
		goneAfter = time.Since(killed)
		return nil
	})
	t.Logf("after SIGKILL: leases expired within %s, presence within %s (TTL %s)",
		admittedAfter.Round(10*time.Millisecond), goneAfter.Round(10*time.Millisecond), ttl)
	// The TTL plus slack for polling and -race.
	if limit := ttl + 1500*time.Millisecond; admittedAfter > limit || goneAfter > limit {
		t.Errorf("expiry took longer than %s", limit)
	}
	c := connect(t, survivor.srv.URL, "survivor", identity{user: "crash"}, "room:lobby")
	eventually(t, "the user is present again, on the survivor", func() error {
		if got := presence(t, survivor, "room:lobby"); got != "crash" {
			return fmt.Errorf("presence %q", got)
		}
		return nil
	})
	c.close()
}
