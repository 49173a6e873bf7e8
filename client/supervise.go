package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/protocol"
)

// rejoinRateLimitWait is the pause after the server rate-limited a rejoin:
// the default join bucket (10/s) refills ten tokens meanwhile.
const rejoinRateLimitWait = time.Second

// supervise owns the connection's lifecycle after Dial: it waits for the
// connection to end, then reconnects by the policy, until Close or a
// terminal cause. It never runs application code other than Token.
func (c *Client) supervise(cn *conn) {
	defer close(c.superDone)
	var attempt int // position in the backoff sequence
	for {
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			cn.shutdown()
			c.unpublish(cn)
			return
		}
		cause := cn.cause()
		c.unpublish(cn)
		if c.ctx.Err() != nil {
			return
		}
		lived := time.Since(cn.started)
		c.log.Info("disconnected",
			slog.String("conn_id", cn.welcome.ConnectionID),
			slog.String("reason", cause.Error()),
			slog.Int("code", int(websocket.CloseStatus(cause))),
			slog.Duration("duration", lived))
		if lived >= c.opts.Backoff.Max {
			attempt = 0
		}
		if cn = c.reconnect(cause, cn.token, &attempt); cn == nil {
			return
		}
	}
}

// reconnect makes attempts until one connects (returned, published) or the
// client must stop (nil). cause is why the last connection ended, token
// the credential it used.
func (c *Client) reconnect(cause error, token string, attempt *int) *conn {
	authRefused := false // the previous failure was a refused credential
	for tries := 0; ; tries++ {
		v := judge(cause)
		refused := ""
		if v.auth {
			if authRefused {
				// A second credential in a row was refused: the application
				// has no valid one.
				return c.stop(cause)
			}
			refused = token
		}
		authRefused = v.auth
		if v.stop {
			return c.stop(cause)
		}
		if c.opts.MaxAttempts > 0 && tries >= c.opts.MaxAttempts {
			return c.stop(fmt.Errorf("%w (%d): %w", ErrMaxAttempts, tries, cause))
		}
		if v.restart {
			*attempt = 0
		}
		var delay time.Duration
		if v.lazy {
			if !c.idleUntilNeeded(cause) {
				return nil
			}
		} else {
			delay = v.floor + c.opts.Backoff.delay(*attempt, c.randN)
			*attempt++
		}
		c.log.Info("reconnect_scheduled", slog.Int("attempt", tries+1), slog.Duration("delay", delay))
		c.state(State{Phase: Reconnecting, Attempt: tries + 1, Delay: delay, Err: cause})
		if !c.sleep(delay) {
			return nil
		}
		cn, tok, err := c.connect(c.ctx, refused, cause)
		if err == nil {
			var lost error
			if lost, err = c.rejoin(cn); err == nil {
				c.publish(cn, lost)
				return cn
			}
			cn.abort(err)
			<-cn.done
		}
		if c.ctx.Err() != nil {
			return nil
		}
		// When Token returned the refused credential again, connect
		// returned the refusal itself, which stops the next round.
		cause, token = err, tok
	}
}

// stop ends the client for a cause that forbids reconnecting.
func (c *Client) stop(cause error) *conn {
	c.end(fmt.Errorf("%w: %w", ErrClosed, cause), cause)
	return nil
}

// sleep waits d unless the client is closed first.
func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// idleUntilNeeded parks the client after an idle close (4002) until a call
// needs the connection; false if the client was closed meanwhile.
func (c *Client) idleUntilNeeded(cause error) bool {
	c.mu.Lock()
	select {
	case <-c.wake: // a stale request from an earlier idle period
	default:
	}
	needed := c.waiters > 0
	c.idle = !needed
	c.mu.Unlock()
	if needed {
		return true
	}
	c.state(State{Phase: Idle, Err: cause})
	defer func() {
		c.mu.Lock()
		c.idle = false
		c.mu.Unlock()
	}()
	select {
	case <-c.wake:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// rejoin joins cn to the rooms the application joined, before calls can
// use cn. Rooms the server now refuses are forgotten and reported in lost;
// err is a connection failure, which fails the attempt.
func (c *Client) rejoin(cn *conn) (lost, err error) {
	c.mu.Lock()
	rooms := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		rooms = append(rooms, r)
	}
	c.mu.Unlock()
	slices.Sort(rooms)
	var refusals []error
	for _, r := range cn.autoRecover {
		if err := c.rejoinOne(cn, r); err != nil && !isServerError(err) {
			return nil, err
		}
	}
	for _, r := range rooms {
		err := c.rejoinOne(cn, r)
		var se *ServerError
		switch {
		case err == nil:
		case errors.As(err, &se):
			c.forgetRoom(r)
			c.log.Warn("rejoin_refused", slog.String("conn_id", cn.welcome.ConnectionID), slog.String("room", r), slog.String("code", se.Code))
			refusals = append(refusals, fmt.Errorf("client: rejoin %q: %w", r, err))
		default:
			return nil, err
		}
	}
	// A Leave whose ctx ended while it waited for this connection forgot
	// its room without telling the server: undo the rejoin of it.
	for _, r := range rooms {
		if !c.wantsRoom(r) {
			if err := cn.send(outFrame{Type: "leave", Room: r}); err != nil {
				return nil, err
			}
		}
	}
	return errors.Join(refusals...), nil
}

// rejoinOne joins one room, pausing when the server's join rate limit
// bites: many rooms are more joins than its burst allows. A room the
// client has a position for is recovered from it, its events held back
// meanwhile (an automatic room's since the welcome).
func (c *Client) rejoinOne(cn *conn, room string) error {
	since, recovering := c.Position(room)
	if recovering && !cn.startRecovery(room, since) {
		// An automatic room prepareRecoveries started.
		cn.recMu.Lock()
		rr := cn.recovering[room]
		cn.recMu.Unlock()
		if rr == nil || rr.acked {
			return nil
		}
		since = rr.since
	}
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeoutCause(c.ctx, c.opts.AckTimeout, ErrTimeout)
		var err error
		if recovering {
			err = cn.sendRecovery(ctx, room, since, nil)
		} else {
			_, err = cn.call(ctx, outFrame{Type: "join", Room: room}, func(ack json.RawMessage) { c.joined(room, ack) })
		}
		cancel()
		var se *ServerError
		if errors.As(err, &se) && se.Code == protocol.CodeRateLimited && try < 5 {
			if !c.sleep(rejoinRateLimitWait) {
				return ErrClosed
			}
			continue
		}
		if err != nil && recovering {
			cn.giveUp(room, err)
		}
		return err
	}
}

func isServerError(err error) bool {
	var se *ServerError
	return errors.As(err, &se)
}
