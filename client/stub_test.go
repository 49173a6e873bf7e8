package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/client"
)

// TestHandshakeWithAScriptedServer dials servers that send exactly the
// frames a case scripts, for orders a real hub produces only by chance and
// for servers that are not wsgate at all.
func TestHandshakeWithAScriptedServer(t *testing.T) {
	cases := []struct {
		name         string
		subprotocols []string // what the server accepts
		frames       []string // sent after the upgrade
		check        func(t *testing.T, c *client.Client, rec *recorder, err error)
	}{
		{
			// The hub joins the automatic rooms before it queues the
			// welcome: a broadcast can overtake it.
			name:         "event_before_the_welcome_is_delivered",
			subprotocols: []string{"wsgate.v1"},
			frames: []string{
				`{"type":"event","event":"early","room":"user:alice","data":1}`,
				`{"type":"welcome","data":{"connectionId":"c1","userId":"alice","expiresAt":0,"heartbeatMs":25000}}`,
				`{"type":"event","event":"late","data":2}`,
			},
			check: func(t *testing.T, c *client.Client, rec *recorder, err error) {
				if err != nil {
					t.Fatal(err)
				}
				rec.waitFor(t, "both events", func() bool { return len(rec.events) == 2 })
				rec.mu.Lock()
				defer rec.mu.Unlock()
				if rec.events[0].Name != "early" || rec.events[1].Name != "late" || c.ConnID() != "c1" {
					t.Fatalf("events %+v, conn %q", rec.events, c.ConnID())
				}
			},
		},
		{
			name:         "server_without_wsgate_v1_is_a_protocol_error",
			subprotocols: nil,
			check:        wantProtocolError,
		},
		{
			name:         "frame_that_is_not_JSON_is_a_protocol_error",
			subprotocols: []string{"wsgate.v1"},
			frames:       []string{`hello`},
			check:        wantProtocolError,
		},
		{
			name:         "welcome_without_connection_id_is_a_protocol_error",
			subprotocols: []string{"wsgate.v1"},
			frames:       []string{`{"type":"welcome","data":{}}`},
			check:        wantProtocolError,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: tc.subprotocols})
				if err != nil {
					return
				}
				defer ws.CloseNow()
				ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
				defer cancel()
				for _, f := range tc.frames {
					if ws.Write(ctx, websocket.MessageText, []byte(f)) != nil {
						return
					}
				}
				_, _, _ = ws.Read(ctx) // until the client goes
			}))
			defer srv.Close()
			rec := newRecorder()
			opts := client.Options{
				URL:   "ws" + strings.TrimPrefix(srv.URL, "http"),
				Token: staticToken("t"),
			}
			rec.attach(&opts)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, opts)
			if c != nil {
				defer c.Close()
			}
			tc.check(t, c, rec, err)
		})
	}
}

func wantProtocolError(t *testing.T, _ *client.Client, _ *recorder, err error) {
	t.Helper()
	if !errors.Is(err, client.ErrProtocol) {
		t.Fatalf("err = %v, want ErrProtocol", err)
	}
}
