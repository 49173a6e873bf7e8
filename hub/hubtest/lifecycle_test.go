package hubtest_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/hub/hubtest"
	"github.com/wsgate/wsgate/protocol"
)

// The life of a connection: how it ends, what it starts with, and its use
// from several goroutines.

func TestCloseReleasesEverything(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	if err := alice.Join("team:acme"); err != nil {
		t.Fatal(err)
	}
	if n := s.h.Connections(); n != 1 {
		t.Fatalf("%d connections", n)
	}
	alice.Close()
	alice.Close() // idempotent
	if n := s.h.Connections(); n != 0 {
		t.Fatalf("%d connections after Close", n)
	}
	if users, err := s.h.Presence(t.Context(), "team:acme"); err != nil || len(users) != 0 {
		t.Fatalf("still present: %v %v", users, err)
	}
	if err := alice.Call("ping", nil, nil); !errors.Is(err, hubtest.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	if _, err := alice.Next(t.Context()); !errors.Is(err, hubtest.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	select {
	case <-alice.Done():
	default:
		t.Fatal("Done not closed")
	}
}

func TestServerSideCloseEndsTheConnection(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	if err := s.h.DisconnectUser(t.Context(), "alice", "logout"); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Next(t.Context())
	var ce *hubtest.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseUnauthorized || ce.Bye != "logout" {
		t.Fatalf("got %v, want a 4001 close after a logout bye", err)
	}
	if alice.Err() != err {
		t.Fatalf("Err() = %v, want %v", alice.Err(), err)
	}
	if n := s.h.Connections(); n != 0 {
		t.Fatalf("%d connections once closed", n)
	}
	if err := alice.Emit("ping", nil); !errors.Is(err, hubtest.ErrClosed) || !errors.As(err, &ce) {
		t.Fatalf("emit after the close: %v", err)
	}
}

func TestExpiredIdentityIsClosed(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", ExpiresAt: time.Now().Add(20 * time.Millisecond)})
	_, err := alice.Next(t.Context()) // the hub's expiry timer closes it; Next waits for that
	var ce *hubtest.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseTokenExpired || ce.Bye != "token_expired" {
		t.Fatalf("got %v, want a 4003 close after a token_expired bye", err)
	}
}

func TestShutdownClosesEveryConnection(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown did not drain: %v", err)
	}
	var ce *hubtest.CloseError
	if err := alice.Err(); !errors.As(err, &ce) || ce.Code != protocol.CloseServiceRestart || ce.Bye != "shutdown" {
		t.Fatalf("got %v, want 1012 after a shutdown bye", err)
	}
	if _, err := hubtest.Open(s.h, auth.Identity{UserID: "bob"}, hubtest.Options{}); !errors.Is(err, hub.ErrShuttingDown) {
		t.Fatalf("open after Shutdown: %v", err)
	}
}

func TestAdmissionRefusalIsReturned(t *testing.T) {
	s := newService(t, func(o *hub.Options) {
		o.Admit = func(_ context.Context, user string) (func(), error) {
			if user == "mallory" {
				return nil, &protocol.Refusal{Status: http.StatusTooManyRequests, Code: protocol.CodeConnectionLimit, Message: "too many"}
			}
			return func() {}, nil
		}
	})
	_, err := hubtest.Open(s.h, auth.Identity{UserID: "mallory"}, hubtest.Options{})
	var rej *protocol.Refusal
	if !errors.As(err, &rej) || rej.Code != protocol.CodeConnectionLimit {
		t.Fatalf("got %v, want the Admit refusal", err)
	}
	if n := s.h.Connections(); n != 0 {
		t.Fatalf("%d connections after a refusal", n)
	}
}

func TestRequestAndContextReachHandlers(t *testing.T) {
	type traceKey struct{}
	s := newService(t, nil)
	hub.Handle(s.h, "whoami", func(ctx hub.Context, _ struct{}) (map[string]any, error) {
		return map[string]any{
			"ip": ctx.Conn().Request.ClientIP, "ua": ctx.Conn().Request.UserAgent,
			"trace": ctx.Value(traceKey{}), "tenant": ctx.Identity().TenantID,
		}, nil
	})
	base, cancel := context.WithCancel(context.WithValue(context.Background(), traceKey{}, "t-1"))
	cancel() // a request context ends with its request; the connection does not
	alice, err := hubtest.Open(s.h, auth.Identity{UserID: "alice", TenantID: "acme"}, hubtest.Options{
		Context: base,
		Request: hub.RequestInfo{ClientIP: "203.0.113.7", UserAgent: "test/1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	var got map[string]string
	if err := alice.Call("whoami", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got["ip"] != "203.0.113.7" || got["ua"] != "test/1" || got["trace"] != "t-1" || got["tenant"] != "acme" {
		t.Fatalf("the handler saw %v", got)
	}
}

func TestWhatNoClientCouldSendIsRefusedLocally(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	for name, err := range map[string]error{
		"event_name_with_a_space": alice.Call("say hi", nil, nil),
		"empty_room":              alice.Join(""),
		"unencodable_data":        alice.Emit("ping", func() {}),
	} {
		if err == nil || hubtest.Code(err) != "" {
			t.Errorf("%s: %v, want a local error", name, err)
		}
	}
	if s.ran.Load() != 0 {
		t.Fatal("a handler ran")
	}
	if _, err := hubtest.Open(s.h, auth.Identity{}, hubtest.Options{}); err == nil {
		t.Fatal("an identity without a user was accepted")
	}
}

func TestNextWaitsForTheEvent(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	waiting := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		close(waiting)
		ev, err := alice.Next(context.Background()) // bounded by Options.Wait
		if err == nil && ev.Name != "late" {
			err = errors.New("got " + ev.Name)
		}
		got <- err
	}()
	<-waiting
	if err := s.h.ToUser(t.Context(), "alice", "late", nil); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestNextGivesUpWhenItsContextEnds(t *testing.T) {
	s := newService(t, nil)
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := alice.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the context's error", err)
	}
}

// Calls from several goroutines, broadcasts and a close from the hub all
// at once: what the race detector checks.
func TestConcurrentUse(t *testing.T) {
	s := newService(t, func(o *hub.Options) { o.EventRate = hub.Limit{Rate: 1000, Burst: 1000} })
	alice := hubtest.Connect(t, s.h, auth.Identity{UserID: "alice", TenantID: "acme"})
	bob := hubtest.Connect(t, s.h, auth.Identity{UserID: "bob", TenantID: "acme"})
	if err := bob.Join("team:acme"); err != nil {
		t.Fatal(err)
	}
	const workers, calls = 4, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				if err := alice.Call("say", say{Room: "team:acme", Text: "hi"}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range workers * calls {
			if _, err := bob.Next(t.Context()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if n := len(bob.Events()); n != workers*calls {
		t.Fatalf("bob received %d events, want %d", n, workers*calls)
	}
	if err := s.h.DisconnectUser(t.Context(), "bob", "bye"); err != nil {
		t.Fatal(err)
	}
	<-bob.Done()
}
