package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
)

// A user offline for a while gets, when they come back, the notifications
// sent to them and to their tenant meanwhile: the page rejoins its user
// and tenant rooms with the positions it had.
func TestOfflineUserGetsWhatTheyMissed(t *testing.T) {
	e := startServer(t, nil)
	bob := e.connect(t, "bob")
	var w struct {
		Positions map[string]struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		} `json:"positions"`
	}
	decode(t, bob.welcomeData, &w)
	user, tenant := w.Positions["user:bob"], w.Positions["tenant:acme"]
	if user.Epoch == "" || tenant.Epoch == "" {
		t.Fatalf("welcome positions %+v, want user:bob and tenant:acme", w.Positions)
	}
	bob.ws.CloseNow()

	missed := []string{
		e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "one"}),
		e.mustNotify(t, "alice", map[string]any{"target": "tenant", "id": "acme", "title": "two"}),
		e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "three"}),
	}
	back := e.connect(t, "bob")
	var got []string
	for _, rm := range []struct {
		room   string
		offset uint64
		epoch  string
		missed int
	}{{"user:bob", user.Offset, user.Epoch, 2}, {"tenant:acme", tenant.Offset, tenant.Epoch, 1}} {
		ack := back.call(map[string]any{"type": "join", "room": rm.room,
			"data": map[string]any{"since": map[string]any{"offset": rm.offset, "epoch": rm.epoch}}})
		var r struct {
			Recovered bool `json:"recovered"`
			Missed    int  `json:"missed"`
		}
		decode(t, ack.Data, &r)
		if ack.Type != "ack" || !r.Recovered || r.Missed != rm.missed {
			t.Fatalf("recovery of %s: %+v %+v", rm.room, ack, r)
		}
		for range rm.missed {
			f := back.nextEvent(eventNew)
			if f.Room != rm.room || f.Offset == nil {
				t.Fatalf("recovered %+v, want an event of %s with its position", f, rm.room)
			}
			got = append(got, received(t, f).ID)
		}
	}
	if want := []string{missed[0], missed[2], missed[1]}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("recovered %v, want %v (the user's, then the tenant's)", got, want)
	}
	back.expectNoEvent("nothing else")
}

func TestIdempotencyKey(t *testing.T) {
	e := startServer(t, nil)
	bob := e.connect(t, "bob")
	body := map[string]any{"target": "user", "id": "bob", "title": "Invoice paid"}
	var ids []string
	for range 2 {
		status, resp := e.notifyWithKey(t, "alice", "invoice-1042-paid", body)
		if status != http.StatusAccepted {
			t.Fatalf("POST: %d %v", status, resp)
		}
		ids = append(ids, resp["id"])
	}
	if ids[0] != ids[1] {
		t.Fatalf("a retry got id %s, the first %s: want the same", ids[1], ids[0])
	}
	if got := received(t, bob.nextEvent(eventNew)); got.ID != ids[0] {
		t.Fatalf("bob got %+v", got)
	}
	bob.expectNoEvent("the retry")

	// The key is the caller's: root's identical key is another notification.
	status, resp := e.notifyWithKey(t, "root", "invoice-1042-paid", body)
	if status != http.StatusAccepted || resp["id"] == ids[0] {
		t.Fatalf("another caller's key: %d %v", status, resp)
	}
	if got := received(t, bob.nextEvent(eventNew)); got.ID != resp["id"] {
		t.Fatalf("bob got %+v", got)
	}

	for name, key := range map[string]string{"space": "a b", "too_long": strings.Repeat("k", maxIdempotencyKey+1), "non_ascii": "clé"} {
		t.Run("refuses_"+name, func(t *testing.T) {
			if status, resp := e.notifyWithKey(t, "alice", key, body); status != http.StatusBadRequest {
				t.Fatalf("key %q: %d %v, want 400", key, status, resp)
			}
		})
	}
	bob.expectNoEvent("refused requests")
}

// The operator's story: a publish answered 503 while Redis was frozen may
// be delivered once Redis thaws; the retry the 503 asked for, with the
// same Idempotency-Key, is not delivered a second time.
func TestRetryAfterAFrozenRedisIsDeliveredOnce(t *testing.T) {
	srv := redistest.Start(t)
	e := startServer(t, func(c *config) {
		c.Secret = []byte(testSecret)
		c.RedisURL = "redis://" + srv.Addr()
	})
	bob := e.connect(t, "bob")
	body := map[string]any{"target": "user", "id": "bob", "title": "once"}
	srv.Pause()
	if status, resp := e.notifyWithKey(t, "alice", "k-frozen", body); status != http.StatusServiceUnavailable {
		srv.Resume()
		t.Fatalf("while frozen: %d %v, want 503", status, resp)
	}
	srv.Resume()
	var id string
	eventually(t, "the retry to be accepted", func() error {
		status, resp := e.notifyWithKey(t, "alice", "k-frozen", body)
		if status != http.StatusAccepted {
			return fmt.Errorf("%d %v", status, resp)
		}
		id = resp["id"]
		return nil
	})
	// A later notification to bob follows, on Redis, whatever was
	// published before it: if the frozen attempt was delivered as well as
	// the retry, both come before it.
	marker := e.mustNotify(t, "alice", map[string]any{"target": "user", "id": "bob", "title": "marker"})
	var got []string
	for {
		n := received(t, bob.nextEvent(eventNew))
		if n.ID == marker {
			break
		}
		got = append(got, n.ID)
	}
	if len(got) != 1 || got[0] != id {
		t.Fatalf("before the marker bob got %v, want %s once", got, id)
	}
}
