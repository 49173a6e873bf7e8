package adversarial

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
)

// stuckBound is how many of one user's handlers, past their deadline, the
// hub lets run at once on a node.
const stuckBound = 8

// TestHandlersThatIgnoreTheirDeadline: the service has a handler that
// ignores its context (a backend call without a timeout), and mallory has
// found it. She calls it again and again on the five connections she may
// hold, to pile up goroutines, then drops her connections to start afresh.
// Every call is answered TIMEOUT; stuckBound of hers run, the rest are
// refused without running; while hers still run her admission slots
// stay taken, so reconnecting does not get her past the connection limit;
// another user's calls still run; once hers return she may connect again.
func TestHandlersThatIgnoreTheirDeadline(t *testing.T) {
	unblock := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(unblock) }) }
	var started atomic.Int32
	srv := Start(t, Config{Hub: func(o *hub.Options) {
		o.HandlerTimeout = 50 * time.Millisecond
		o.EventRate = hub.Limit{Rate: 1000, Burst: 1000}
	}})
	t.Cleanup(free) // runs before the server's cleanup, registered earlier
	hub.Handle(srv.Hub, "report", func(_ hub.Context, _ struct{}) (struct{}, error) {
		started.Add(1)
		<-unblock // ignores its context
		return struct{}{}, nil
	})
	report := func(c *Conn) Frame { return c.Call(map[string]any{"type": "event", "event": "report"}) }

	tok := Token(t, jwt.MapClaims{"sub": "mallory"})
	var conns []*Conn
	for range 5 {
		conns = append(conns, srv.Connect(t, tok))
	}
	const calls = 30
	for i := range calls {
		ExpectError(t, report(conns[i%len(conns)]), "TIMEOUT")
	}
	// A call the hub runs may start a little after its TIMEOUT: wait for
	// the count, then check it does not move.
	testutil.Eventually(t, Wait, "her calls to start", func() bool { return started.Load() >= stuckBound })
	if n := started.Load(); n != stuckBound {
		t.Fatalf("%d of her %d calls ran, want %d", n, calls, stuckBound)
	}

	bob := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "bob"}))
	ExpectError(t, report(bob), "TIMEOUT")
	testutil.Eventually(t, Wait, "bob's call to run while hers are stuck", func() bool { return started.Load() == stuckBound+1 })

	for _, c := range conns {
		c.WS.CloseNow()
	}
	bob.WS.CloseNow()
	testutil.Eventually(t, Wait, "her connections to end", func() bool { return srv.Hub.Connections() == 0 })
	for range len(conns) {
		_, resp, err := srv.Dial(t, Handshake{Token: tok})
		ExpectRefusal(t, resp, err, http.StatusTooManyRequests, "CONNECTION_LIMIT_EXCEEDED")
	}

	free()
	testutil.EventuallyNil(t, Wait, "a connection once her calls returned", func() error {
		_, _, err := srv.Dial(t, Handshake{Token: tok})
		return err
	})
	if n := started.Load(); n != stuckBound+1 {
		t.Fatalf("%d calls ran in all, want %d", n, stuckBound+1)
	}
}
