package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/bench/internal/benchauth"
	"github.com/wsgate/wsgate/hub"
)

// floodTarget serves h on loopback and returns its host:port.
func floodTarget(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func wsgateTarget(t *testing.T) string {
	t.Helper()
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: benchauth.Secret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Options{Authenticator: authn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	return floodTarget(t, h)
}

// neverCloses reads and drops every message, whatever comes.
func neverCloses(t *testing.T) string {
	t.Helper()
	return floodTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}))
}

func kind(t *testing.T, id string) floodKind {
	t.Helper()
	ks, err := selectKinds(id)
	if err != nil {
		t.Fatal(err)
	}
	return ks[0]
}

// The flooder tells apart the server's close frame, the end of the TCP
// connection and a server that never closes: the report's columns rest on it.
func TestFloodConnReportsHowTheServerEndedIt(t *testing.T) {
	tok, err := benchauth.Mint("flooder", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		addr        func(*testing.T) string
		d           *dialect
		kind        string
		stopAtClose bool
		maxFrames   int64
		closed      bool
		code        int
		dropped     bool
		anyEnd      bool // the server's end of the connection may be seen or not
	}{
		{name: "wsgate_closes_a_ping_flood_1008_then_ends_the_connection", addr: wsgateTarget, d: dialects["wsgate"],
			kind: "pings", maxFrames: 1 << 40, closed: true, code: 1008, dropped: true},
		// The hub ends a flooder's connection right after its close frame
		// (once it has read 64 KiB more), which a flooder that stops at the
		// frame sees or not depending on when it stops reading.
		{name: "stopping_at_the_close_frame_still_reports_its_code", addr: wsgateTarget, d: dialects["wsgate"],
			kind: "empty-continuations", stopAtClose: true, maxFrames: 1 << 40, closed: true, code: 1008, anyEnd: true},
		{name: "a_server_that_never_closes_is_flooded_up_to_the_frame_bound", addr: neverCloses, d: dialects["bare"],
			kind: "junk", maxFrames: 20_000, closed: false, dropped: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.addr(t)
			fc, err := dialFlood(addr, tc.d, tok, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			lim := floodLimits{frames: tc.maxFrames, until: time.Now().Add(5 * time.Second), grace: 3 * time.Second, stopAtClose: tc.stopAtClose}
			out := fc.flood(kind(t, tc.kind), lim, nil)
			if out.closed != tc.closed || out.code != tc.code || (out.dropped != tc.dropped && !tc.anyEnd) {
				t.Fatalf("closed %v code %d dropped %v; want %v %d %v", out.closed, out.code, out.dropped, tc.closed, tc.code, tc.dropped)
			}
			if out.frames <= 0 || out.frames > tc.maxFrames+int64(floodBatch) {
				t.Fatalf("%d frames sent, bound %d", out.frames, tc.maxFrames)
			}
			if out.dropped && out.gone < out.took {
				t.Fatalf("connection ended (%v) before the close frame (%v)", out.gone, out.took)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
