package adversarial

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// TestShutdownWithClientsThatNeverAnswer: while a node shuts down, two
// attackers try to hold it up by never answering its close frame, one
// silent, one still sending calls and pings. Each is told bye and close
// 1012 like everyone else, nothing more is sent to it or run for it, and
// the node drops it at its shutdown deadline: Shutdown returns the
// context's error instead of waiting, a genuine client completes the close
// handshake, and new handshakes are refused with 503.
func TestShutdownWithClientsThatNeverAnswer(t *testing.T) {
	srv := Start(t, Config{})
	silent := srv.ConnectRaw(t, Token(t, jwt.MapClaims{"sub": "silent"}))
	busy := srv.ConnectRaw(t, Token(t, jwt.MapClaims{"sub": "busy"}))
	genuine := srv.Connect(t, Token(t, jwt.MapClaims{"sub": "genuine"}))

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Hub.Shutdown(ctx) }()

	f := genuine.Read()
	var bye struct{ Reason string }
	if err := json.Unmarshal(f.Data, &bye); err != nil || f.Type != "bye" || bye.Reason != "shutdown" {
		t.Fatalf("the genuine client got %+v, want bye shutdown", f)
	}
	genuine.ExpectClose(websocket.StatusServiceRestart)

	for _, c := range []*RawConn{silent, busy} {
		if _, before := c.ExpectClose(1012); len(before) != 1 || describe(before[0]) != "bye" {
			t.Fatalf("before the close: %v, want the bye only", before)
		}
	}
	// The busy one goes on as if nothing happened, and never answers.
	sent := flood(busy, func(c *RawConn, i int) {
		if i%2 == 0 {
			c.Send(FIN|OpPing, []byte("still here"))
		} else {
			c.Send(FIN|OpText, []byte(`{"type":"event","id":1,"event":"x"}`))
		}
	})
	silent.ExpectEnd()
	busy.ExpectEnd()
	busy.Close()
	t.Logf("the busy attacker sent %d frames after the close", <-sent)

	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want the deadline's error", err)
		}
	case <-time.After(Wait):
		t.Fatalf("Shutdown still running %s after its deadline", Wait)
	}
	_, resp, err := srv.Dial(t, Handshake{Token: Token(t, nil)})
	ExpectRefusal(t, resp, err, http.StatusServiceUnavailable, "UNAVAILABLE")
}
