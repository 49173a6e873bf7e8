package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/protocol"
)

// Emit sends an event without asking for an answer. It waits for a
// connection while the client reconnects (bounded by ctx), and returns once
// the frame is written: delivery is not confirmed, and a server refusal
// reaches only Options.OnError. Use Call to know the outcome.
func (c *Client) Emit(ctx context.Context, event string, data any) error {
	f, err := eventFrame(event, data)
	if err != nil {
		return err
	}
	for {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return err
		}
		if err := cn.send(f); !errors.Is(err, errUnsent) {
			return err
		}
	}
}

// Call sends an event and waits for its answer: the ack's data decoded into
// Out (left zero when the ack has none), or the error frame as a
// *ServerError. Within Options.AckTimeout, waiting for a connection
// included, or it fails with ErrTimeout; a connection lost before the
// answer fails it with ErrDisconnected. A call is never replayed on the
// next connection: the caller decides whether retrying is safe.
func Call[Out any](ctx context.Context, c *Client, event string, data any) (Out, error) {
	var out Out
	f, err := eventFrame(event, data)
	if err != nil {
		return out, err
	}
	raw, err := c.request(ctx, f, nil)
	if err != nil {
		return out, err
	}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("client: decode the answer to %q: %w", event, err)
	}
	return out, nil
}

// Join joins room and remembers it: after a reconnect the client rejoins it
// before calls resume. In a room whose history the server keeps, a rejoin
// (after a reconnect, or a Join of a room the client has a position for)
// recovers the events missed meanwhile, reported to Options.OnRecovery. A refusal is a *ServerError (FORBIDDEN,
// ROOM_LIMIT_EXCEEDED, RATE_LIMITED...) and changes nothing. Rooms the
// server joins by itself (user:, tenant:, global) need no Join. After
// ErrTimeout or ErrDisconnected the outcome is unknown; Join is idempotent,
// so call it again.
func (c *Client) Join(ctx context.Context, name string) error {
	if !protocol.ValidRoom(name) {
		return fmt.Errorf("client: invalid room name %q", name)
	}
	// The room is remembered by the reader when the ack arrives, before the
	// connection can be seen to drop, so a rejoin never misses it.
	remember := func(ack json.RawMessage) {
		c.remember(name)
		c.joined(name, ack)
	}
	if since, ok := c.Position(name); ok {
		return c.rejoinWithHistory(ctx, name, since)
	}
	_, err := c.request(ctx, outFrame{Type: "join", Room: name}, remember)
	return err
}

// rejoinWithHistory is Join of a room the client has a position for: it
// recovers what came after it.
func (c *Client) rejoinWithHistory(ctx context.Context, name string, since Position) error {
	ctx, cancel := context.WithTimeoutCause(ctx, c.opts.AckTimeout, ErrTimeout)
	defer cancel()
	for {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return err
		}
		if !cn.startRecovery(name, since) {
			return nil // a recovery of the room is under way
		}
		err = cn.sendRecovery(ctx, name, since, func() { c.remember(name) })
		if err == nil || !errors.Is(err, errUnsent) {
			if err != nil {
				cn.giveUp(name, err)
			}
			return err
		}
	}
}

// Leave leaves room and forgets it at once, with its position, so that it
// is not rejoined even if the leave itself fails.
func (c *Client) Leave(ctx context.Context, name string) error {
	if !protocol.ValidRoom(name) {
		return fmt.Errorf("client: invalid room name %q", name)
	}
	c.forgetRoom(name)
	_, err := c.request(ctx, outFrame{Type: "leave", Room: name}, nil)
	return err
}

// Refresh hands the server a new token for the same user before the
// current one expires, keeping the connection (and its rooms). A refusal is
// a *ServerError: UNAUTHORIZED (invalid, or another user's) or
// TOKEN_EXPIRED. Options.Token should return the new token from now on: it
// is what the next reconnect uses.
func (c *Client) Refresh(ctx context.Context, token string) error {
	if token == "" || len(token) > protocol.MaxTokenLen {
		return errors.New("client: Refresh needs a token of 1 to 16 KiB")
	}
	data, err := json.Marshal(struct {
		Token string `json:"token"`
	}{token})
	if err != nil {
		return err
	}
	_, err = c.request(ctx, outFrame{Type: "auth", Data: data}, nil)
	return err
}

// request sends f with an id on the current connection and waits for the
// answer, all within the ack timeout. A connection found over before the
// write is not a failure: the message waits for the next one.
func (c *Client) request(ctx context.Context, f outFrame, onAck func(json.RawMessage)) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.opts.AckTimeout, ErrTimeout)
	defer cancel()
	for {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return nil, err
		}
		data, err := cn.call(ctx, f, onAck)
		if !errors.Is(err, errUnsent) {
			return data, err
		}
	}
}

func eventFrame(event string, data any) (outFrame, error) {
	if !protocol.ValidEvent(event) {
		return outFrame{}, fmt.Errorf("client: invalid event name %q: 1-64 characters of [A-Za-z0-9:._-]", event)
	}
	f := outFrame{Type: "event", Event: event}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			return outFrame{}, fmt.Errorf("client: encode %q data: %w", event, err)
		}
		if string(raw) != "null" {
			f.Data = raw
		}
	}
	return f, nil
}
