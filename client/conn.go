package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/protocol"
)

// outFrame is a client envelope; only the fields its type needs are sent.
type outFrame struct {
	Type  string          `json:"type"`
	ID    *uint64         `json:"id,omitempty"`
	Event string          `json:"event,omitempty"`
	Room  string          `json:"room,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// inFrame is a server envelope.
type inFrame struct {
	Type    string          `json:"type"`
	ID      *uint64         `json:"id"`
	Event   string          `json:"event"`
	Room    string          `json:"room"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Offset  *uint64         `json:"offset"`
	Epoch   string          `json:"epoch"`
}

type welcome struct {
	ConnectionID string              `json:"connectionId"`
	UserID       string              `json:"userId"`
	ExpiresAt    int64               `json:"expiresAt"`
	HeartbeatMS  int64               `json:"heartbeatMs"`
	Positions    map[string]Position `json:"positions"`
}

// conn is one WebSocket connection. Its reader goroutine (readLoop) owns the
// reading; writes are serialized by coder/websocket, which allows one writer
// at a time and is safe to call from any goroutine.
type conn struct {
	c       *Client
	ws      *websocket.Conn
	token   string // the credential it authenticated with, to tell a new one from a refused one
	welcome welcome
	early   []inFrame // events that came before the welcome; handshake only
	bye     string    // the reason of the server's bye; the reading goroutine's
	started time.Time

	ctx    context.Context // bounds reads and writes; cancelled when the connection is over
	cancel context.CancelFunc
	done   chan struct{} // closed when readLoop returns

	lastSeen atomic.Int64 // unix nanos of the last frame or ping from the server

	mu      sync.Mutex          // guards the fields below
	pending map[uint64]*pending // calls awaiting an answer; nil once the connection is over
	err     error               // why the connection ended; the first reason wins
	dog     *time.Timer         // heartbeat watchdog

	recMu       sync.Mutex               // guards recovering; held while a recovering room's events are handed on
	recovering  map[string]*roomRecovery // rooms being recovered on this connection
	autoRecover []string                 // automatic rooms to recover once connected; set before the reader starts
}

// pending is a call waiting for its ack or error.
type pending struct {
	ch    chan reply                 // buffered: the reader never blocks on it
	onAck func(data json.RawMessage) // run by the reader before the reply, see Join
}

type reply struct {
	data json.RawMessage
	err  error
}

// connect makes one connection attempt: Token, handshake, first-message
// auth if configured, welcome. refused is a token the server just refused:
// Token returning it again ends the attempt without dialing. The returned
// token is the one used, also on failure.
func (c *Client) connect(ctx context.Context, refused string, cause error) (*conn, string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	tok, err := c.opts.Token(ctx)
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("client: Token: %w", err)
	case tok == "":
		return nil, "", errors.New("client: Token returned an empty token")
	case refused != "" && tok == refused:
		return nil, tok, cause
	}
	hdr := c.opts.HTTPHeader.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if c.opts.Origin != "" {
		hdr.Set("Origin", c.opts.Origin)
	}
	protos := []string{protocol.Subprotocol}
	switch c.opts.TokenVia {
	case TokenHeader:
		hdr.Set("Authorization", "Bearer "+tok)
	case TokenSubprotocol:
		protos = append(protos, protocol.BearerPrefix+tok)
	}
	cn := &conn{c: c, token: tok, done: make(chan struct{}), pending: make(map[uint64]*pending)}
	ws, resp, err := websocket.Dial(ctx, c.opts.URL, &websocket.DialOptions{
		HTTPClient:     c.opts.HTTPClient,
		HTTPHeader:     hdr,
		Subprotocols:   protos,
		OnPingReceived: cn.onPing,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, tok, handshakeError(resp)
		}
		return nil, tok, fmt.Errorf("client: dial: %w", err)
	}
	if p := ws.Subprotocol(); p != protocol.Subprotocol {
		ws.Close(websocket.StatusProtocolError, "wsgate.v1 required")
		return nil, tok, fmt.Errorf("%w: server selected subprotocol %q, not %s", ErrProtocol, p, protocol.Subprotocol)
	}
	ws.SetReadLimit(c.opts.MaxMessageBytes)
	cn.ws = ws
	cn.lastSeen.Store(time.Now().UnixNano())
	if err := cn.handshake(ctx); err != nil {
		ws.CloseNow()
		return nil, tok, err
	}
	cn.prepareRecoveries()
	for _, f := range cn.early {
		if !cn.handle(f) {
			ws.CloseNow()
			return nil, tok, ErrSlowConsumer
		}
	}
	cn.early = nil
	cn.started = time.Now()
	cn.ctx, cn.cancel = context.WithCancel(context.Background())
	go cn.readLoop()
	cn.watch(2 * time.Duration(cn.welcome.HeartbeatMS) * time.Millisecond)
	return cn, tok, nil
}

// handshake authenticates with the first message if configured and reads
// up to the welcome. It runs before the reader goroutine exists.
func (cn *conn) handshake(ctx context.Context) error {
	var authID uint64
	if cn.c.opts.TokenVia == TokenFirstMessage {
		authID = cn.c.nextID()
		data, _ := json.Marshal(struct {
			Token string `json:"token"`
		}{cn.token})
		b, _ := json.Marshal(outFrame{Type: "auth", ID: &authID, Data: data})
		if err := cn.ws.Write(ctx, websocket.MessageText, b); err != nil {
			return fmt.Errorf("client: send auth: %w", err)
		}
	}
	var refusal *ServerError
	// The hub joins the automatic rooms before it queues the welcome, so a
	// broadcast to one of them can come first: such events are kept for
	// delivery once connected. The wait is bounded by ctx (DialTimeout),
	// the events by EventQueue.
	for {
		_, b, err := cn.ws.Read(ctx)
		if err != nil {
			if refusal != nil {
				return fmt.Errorf("%w (%w)", err, refusal)
			}
			return fmt.Errorf("client: before welcome: %w", err)
		}
		var f inFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("%w: frames are not JSON envelopes", ErrProtocol)
		}
		switch f.Type {
		case "welcome":
			if err := json.Unmarshal(f.Data, &cn.welcome); err != nil || cn.welcome.ConnectionID == "" {
				return fmt.Errorf("%w: malformed welcome", ErrProtocol)
			}
			return nil
		case "error":
			refusal = &ServerError{Code: f.Code, Message: f.Message}
		case "event":
			if len(cn.early) >= cn.c.opts.EventQueue {
				return ErrSlowConsumer
			}
			cn.early = append(cn.early, f)
		}
	}
}

// readLoop reads frames until the connection ends, then fails what is
// still pending.
func (cn *conn) readLoop() {
	defer close(cn.done)
	for {
		typ, b, err := cn.ws.Read(cn.ctx)
		if err != nil {
			cn.end(cn.loggedOut(err))
			return
		}
		cn.lastSeen.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			// A server bug, not a reason to stop for good (ErrProtocol
			// would be): reconnect with backoff.
			cn.end(errors.New("client: the server sent a binary frame"))
			return
		}
		var f inFrame
		if err := json.Unmarshal(b, &f); err != nil {
			cn.c.log.Warn("frame_invalid", slog.String("conn_id", cn.welcome.ConnectionID))
			continue
		}
		if !cn.handle(f) {
			cn.fail(ErrSlowConsumer)
			_ = cn.ws.Close(websocket.StatusCode(protocol.CloseSlowConsumer), "slow consumer")
			cn.end(ErrSlowConsumer)
			return
		}
	}
}

// loggedOut wraps ErrLoggedOut around the end of an established
// connection that the server closed with CloseUnauthorized: only
// hub.DisconnectUser does that after the welcome, and a reconnect would
// undo a logout or a revocation.
func (cn *conn) loggedOut(err error) error {
	if closeCode(err) != protocol.CloseUnauthorized {
		return err
	}
	return fmt.Errorf("%w (reason %q): %w", ErrLoggedOut, cn.bye, err)
}

// handle routes one frame; false means the event queue is full.
func (cn *conn) handle(f inFrame) bool {
	c := cn.c
	switch f.Type {
	case "ack":
		if f.ID != nil {
			cn.resolve(*f.ID, reply{data: f.Data})
		}
	case "error":
		se := &ServerError{Code: f.Code, Message: f.Message}
		if f.ID != nil {
			cn.resolve(*f.ID, reply{err: se})
			return true
		}
		c.log.Info("server_error", slog.String("conn_id", cn.welcome.ConnectionID), slog.String("code", se.Code))
		if c.opts.OnError != nil {
			return c.cb.event(func() { c.opts.OnError(se) })
		}
	case "event":
		switch {
		case f.Event == recoverEvent && f.Room != "":
			cn.recoverAsked(f)
		case f.Offset != nil && f.Room != "":
			return cn.onEvent(f)
		case c.opts.OnEvent != nil:
			ev := Event{Name: f.Event, Room: f.Room, Data: f.Data}
			return c.cb.event(func() { c.opts.OnEvent(ev) })
		}
	case "bye":
		var d struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(f.Data, &d)
		cn.bye = d.Reason
		c.log.Info("bye", slog.String("conn_id", cn.welcome.ConnectionID), slog.String("reason", d.Reason))
	}
	return true
}

// resolve hands an answer to the call waiting for id. Answers to calls that
// gave up (their ctx ended) are dropped.
func (cn *conn) resolve(id uint64, r reply) {
	cn.mu.Lock()
	p := cn.pending[id]
	delete(cn.pending, id)
	cn.mu.Unlock()
	if p == nil {
		return
	}
	if r.err == nil && p.onAck != nil {
		p.onAck(r.data)
	}
	p.ch <- r
}

// call sends f with a fresh id and waits for its answer or ctx.
func (cn *conn) call(ctx context.Context, f outFrame, onAck func(json.RawMessage)) (json.RawMessage, error) {
	id := cn.c.nextID()
	f.ID = &id
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	p := &pending{ch: make(chan reply, 1), onAck: onAck}
	cn.mu.Lock()
	if cn.pending == nil {
		err := cn.err
		cn.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", errUnsent, err)
	}
	cn.pending[id] = p
	cn.mu.Unlock()
	if err := cn.write(b); err != nil {
		cn.forget(id)
		return nil, err
	}
	select {
	case r := <-p.ch:
		return r.data, r.err
	case <-ctx.Done():
		cn.forget(id)
		return nil, context.Cause(ctx)
	}
}

func (cn *conn) forget(id uint64) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
}

// send writes f without an id: no answer unless it fails.
func (cn *conn) send(f outFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	cn.mu.Lock()
	over, cause := cn.pending == nil, cn.err
	cn.mu.Unlock()
	if over {
		return fmt.Errorf("%w: %w", errUnsent, cause)
	}
	return cn.write(b)
}

// write sends one frame under the connection's own context: a caller's
// cancelled ctx must not cut a frame in half, which makes coder/websocket
// drop the connection.
func (cn *conn) write(b []byte) error {
	ctx, cancel := context.WithTimeout(cn.ctx, cn.c.opts.WriteTimeout)
	defer cancel()
	if err := cn.ws.Write(ctx, websocket.MessageText, b); err != nil {
		cn.mu.Lock()
		cause := cn.err
		cn.mu.Unlock()
		if cause == nil {
			cause = err
		}
		return disconnected(cause)
	}
	return nil
}

// fail records why the connection is ending, if nothing else did first.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err == nil {
		cn.err = err
	}
	cn.mu.Unlock()
}

// abort drops the connection at once; the reader reports err.
func (cn *conn) abort(err error) {
	cn.fail(err)
	cn.cancel()
}

// end runs on the reader when the connection is over: it withdraws the
// connection from new calls, fails the pending ones and releases the
// socket. Withdrawing comes first, so that a call that finds the
// connection over (errUnsent) finds no connection next and waits.
func (cn *conn) end(err error) {
	cn.c.unpublish(cn)
	cn.mu.Lock()
	if cn.err == nil {
		cn.err = err
	}
	cause, calls, dog := cn.err, cn.pending, cn.dog
	cn.pending, cn.dog = nil, nil
	cn.mu.Unlock()
	if dog != nil {
		dog.Stop()
	}
	for _, p := range calls {
		p.ch <- reply{err: disconnected(cause)}
	}
	cn.cancel()
	cn.ws.CloseNow()
}

// cause returns why the connection ended; valid after done is closed.
func (cn *conn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// shutdown closes the connection normally for Close, bounded: a dead peer
// must not hold Close for coder/websocket's own 5+5 s.
func (cn *conn) shutdown() {
	cn.fail(ErrClosed)
	t := time.AfterFunc(2*time.Second, cn.cancel)
	_ = cn.ws.Close(websocket.StatusNormalClosure, "")
	t.Stop()
	cn.cancel()
	<-cn.done
}

// onPing notes server pings (the heartbeat); coder/websocket answers them.
func (cn *conn) onPing(context.Context, []byte) bool {
	cn.lastSeen.Store(time.Now().UnixNano())
	return true
}

// watch arms the heartbeat watchdog: the server pings every heartbeat
// interval, so nothing for two of them (at least 5 s) means a dead path
// that TCP may take minutes to notice.
func (cn *conn) watch(timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	timeout = max(timeout, 5*time.Second)
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.pending != nil {
		cn.dog = time.AfterFunc(timeout, func() { cn.checkAlive(timeout) })
	}
}

func (cn *conn) checkAlive(timeout time.Duration) {
	quiet := time.Since(time.Unix(0, cn.lastSeen.Load()))
	if quiet >= timeout {
		cn.abort(ErrHeartbeatTimeout)
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.dog != nil {
		cn.dog.Reset(timeout - quiet)
	}
}
