package hub

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/internal/wire"
)

// The connection's timers — heartbeat, pong deadline, token expiry, the
// first-message auth deadline, the abuse window, the idle timeout — run on
// fake time: a hub inside a synctest bubble serves a connection over
// net.Pipe, whose other end the test speaks frames on.

type pipeAuth struct{}

func (pipeAuth) Authenticate(_ context.Context, tok string) (auth.Identity, error) {
	if tok != "good" {
		return auth.Identity{}, auth.ErrInvalidToken
	}
	return auth.Identity{UserID: "piper", ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// pipePeer is the client end of a connection served over net.Pipe.
type pipePeer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// servePipe starts a connection of h over net.Pipe, authenticated as id
// (nil: first-message auth), and returns its peer.
func servePipe(t *testing.T, h *Hub, id *auth.Identity) *pipePeer {
	server, client := net.Pipe()
	if !h.enterRequest() {
		t.Fatal("hub is shutting down")
	}
	c := newConn(h, context.Background(), requestMeta{ip: "pipe"}, wire.Upgraded{Conn: server})
	go c.runDetached(id, notStarted, func() {})
	t.Cleanup(func() { client.Close() })
	return &pipePeer{t: t, nc: client, br: bufio.NewReader(client)}
}

func (p *pipePeer) write(op byte, payload []byte) {
	p.t.Helper()
	key := [4]byte{9, 8, 7, 6}
	b := []byte{0x80 | op, 0x80 | byte(len(payload))}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame, or an error once the server closed.
func (p *pipePeer) read() (byte, string, error) {
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return 0, "", err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err := io.ReadFull(p.br, x[:]); err != nil {
			return 0, "", err
		}
		n = int(binary.BigEndian.Uint16(x[:]))
	case 127:
		return 0, "", errors.New("frame too large for a pipe test")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(p.br, b)
	return h[0] & 0x0f, string(b), err
}

// expect reads the next frame and checks its opcode and that its payload
// contains want.
func (p *pipePeer) expect(op byte, want string) string {
	p.t.Helper()
	got, payload, err := p.read()
	if err != nil {
		p.t.Fatalf("want %#x %q: %v", op, want, err)
	}
	if got != op || !strings.Contains(payload, want) {
		p.t.Fatalf("got %#x %q, want %#x containing %q", got, payload, op, want)
	}
	return payload
}

// expectClose reads until the close frame and returns its code.
func (p *pipePeer) expectClose() int {
	p.t.Helper()
	for {
		op, payload, err := p.read()
		if err != nil {
			p.t.Fatalf("no close frame: %v", err)
		}
		if op == 0x8 {
			return int(binary.BigEndian.Uint16([]byte(payload)))
		}
	}
}

func newPipeHub(t *testing.T, configure func(*Options)) *Hub {
	opts := Options{Authenticator: pipeAuth{}}
	if configure != nil {
		configure(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// beatCodec is wsgate.v1 with an application heartbeat, as Engine.IO has.
type beatCodec struct{ protocol.Native }

func (beatCodec) Heartbeat() []wire.Frame {
	return []wire.Frame{{Op: wire.OpText, Payload: []byte(`{"type":"beat"}`)}}
}

func (b beatCodec) Decode(op wire.Opcode, p []byte) (protocol.Inbound, error) {
	if string(p) == `{"type":"beat"}` {
		return protocol.Inbound{Kind: protocol.KindPong}, nil
	}
	return b.Native.Decode(op, p)
}

func TestTimers(t *testing.T) {
	id := func() *auth.Identity {
		return &auth.Identity{UserID: "piper", ExpiresAt: time.Now().Add(time.Hour)}
	}
	t.Run("a_ping_every_interval_and_no_close_while_pongs_come", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newPipeHub(t, nil)
			p := servePipe(t, h, id())
			p.expect(0x1, `"type":"welcome"`)
			for range 3 {
				start := time.Now()
				p.expect(0x9, "")
				if d := time.Since(start); d != 25*time.Second {
					t.Fatalf("ping after %v, want 25s", d)
				}
				p.write(0xa, nil)
			}
			p.nc.Close()
			synctest.Wait()
		})
	})
	t.Run("a_codec_heartbeat_replaces_websocket_pings", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newPipeHub(t, nil)
			h.codec = beatCodec{}
			p := servePipe(t, h, id())
			p.expect(0x1, `"type":"welcome"`)
			p.expect(0x1, `{"type":"beat"}`)
			p.write(0x1, []byte(`{"type":"beat"}`))
			p.expect(0x1, `{"type":"beat"}`) // answered: the next one comes
			start := time.Now()
			if _, _, err := p.read(); err == nil { // unanswered: gone
				t.Fatal("frame after an unanswered heartbeat")
			}
			if d := time.Since(start); d != 20*time.Second {
				t.Fatalf("closed %v after the heartbeat, want 20s", d)
			}
			synctest.Wait()
		})
	})
	t.Run("a_ping_left_unanswered_ends_the_connection_at_the_pong_timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newPipeHub(t, nil)
			p := servePipe(t, h, id())
			p.expect(0x1, `"type":"welcome"`)
			p.expect(0x9, "")
			start := time.Now()
			if _, _, err := p.read(); err == nil {
				t.Fatal("frame after an unanswered ping, want the connection gone")
			}
			if d := time.Since(start); d != 20*time.Second {
				t.Fatalf("closed %v after the ping, want the 20s pong timeout", d)
			}
			synctest.Wait()
			if h.Connections() != 0 {
				t.Fatal("dead peer still counted")
			}
		})
	})
	t.Run("the_token_expiry_closes_4003_after_an_error_and_a_bye", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newPipeHub(t, func(o *Options) { o.PingInterval, o.PongTimeout = 2*time.Hour, time.Hour })
			ident := &auth.Identity{UserID: "piper", ExpiresAt: time.Now().Add(10 * time.Minute)}
			p := servePipe(t, h, ident)
			p.expect(0x1, `"type":"welcome"`)
			start := time.Now()
			p.expect(0x1, `"code":"TOKEN_EXPIRED"`)
			if d := time.Since(start); d != 10*time.Minute {
				t.Fatalf("expired after %v, want 10m", d)
			}
			p.expect(0x1, `"type":"bye"`)
			if code := p.expectClose(); code != 4003 {
				t.Fatalf("close %d, want 4003", code)
			}
			p.nc.Close()
			synctest.Wait()
		})
	})
	t.Run("first_message_auth_times_out_with_4001", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newPipeHub(t, func(o *Options) { o.FirstMessageAuth = true })
			p := servePipe(t, h, nil)
			start := time.Now()
			p.expect(0x1, `"code":"UNAUTHORIZED"`)
			if d := time.Since(start); d != 10*time.Second {
				t.Fatalf("timed out after %v, want the 10s default", d)
			}
			if code := p.expectClose(); code != 4001 {
				t.Fatalf("close %d, want 4001", code)
			}
			p.nc.Close()
			synctest.Wait()
		})
	})
	t.Run("rate_limited_messages_count_within_the_abuse_window_only", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newPipeHub(t, func(o *Options) {
				o.MessageRate = Limit{Rate: 1, Burst: 1}
				o.AbuseLimit, o.AbuseWindow = 3, 10*time.Second
			})
			p := servePipe(t, h, id())
			p.expect(0x1, `"type":"welcome"`)
			junk := []byte(`{"type":"event","id":1,"event":"nope"}`)
			p.write(0x1, junk)
			p.expect(0x1, `"code":"UNKNOWN_EVENT"`)
			for range 3 { // three over the rate: at the limit, not past it
				p.write(0x1, junk)
				p.expect(0x1, `"code":"RATE_LIMITED"`)
			}
			time.Sleep(11 * time.Second) // the window passes (fake time)
			p.write(0x1, junk)
			p.expect(0x1, `"code":"UNKNOWN_EVENT"`) // and the bucket refilled
			for range 3 {
				p.write(0x1, junk)
				p.expect(0x1, `"code":"RATE_LIMITED"`)
			}
			p.write(0x1, junk) // the fourth within this window
			if code := p.expectClose(); code != 1008 {
				t.Fatalf("close %d, want 1008", code)
			}
			p.nc.Close()
			synctest.Wait()
		})
	})
	t.Run("idle_timeout_closes_4002_and_traffic_defers_it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newPipeHub(t, func(o *Options) {
				o.IdleTimeout = time.Minute
				o.PingInterval, o.PongTimeout = 2*time.Hour, time.Hour
			})
			p := servePipe(t, h, id())
			p.expect(0x1, `"type":"welcome"`)
			time.Sleep(50 * time.Second)
			p.write(0x1, []byte(`{"type":"event","event":"nope"}`))
			p.expect(0x1, `"code":"UNKNOWN_EVENT"`)
			start := time.Now()
			p.expect(0x1, `"type":"bye"`)
			if d := time.Since(start); d != time.Minute {
				t.Fatalf("idle close %v after the last message, want 1m", d)
			}
			if code := p.expectClose(); code != 4002 {
				t.Fatalf("close %d, want 4002", code)
			}
			p.nc.Close()
			synctest.Wait()
		})
	})
}
