package hub

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/inflight"
	"github.com/wsgate/wsgate/internal/wire"
	wsproto "github.com/wsgate/wsgate/protocol"
)

// ServeHTTP authenticates the request and upgrades it. Refusals before the
// upgrade are answered with the JSON body of docs/PROTOCOL.md. After the
// upgrade it returns, and the connection is served by a goroutine of its own
// until it closes, so that net/http's per-request goroutine and state are
// freed. The connection still counts as a request in flight for Shutdown and
// for guard.Limits' Middleware until it ends; other middleware sees the
// request end at the upgrade.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, end := h.opts.Tracer.Handshake(r)
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	end(h.handshake(w, r))
}

// handshake answers the upgrade request: nil once the connection is
// upgraded and handed to its goroutine, else the refusal it wrote or the
// error that ended it.
func (h *Hub) handshake(w http.ResponseWriter, r *http.Request) error {
	meta := requestMeta{
		ip: h.opts.ClientIP(r), userAgent: truncate(r.UserAgent()), requestID: requestID(r),
		origin: truncate(r.Header.Get("Origin")), host: truncate(r.Host), path: truncate(r.URL.Path),
	}
	if err := wire.Check(r); err != nil {
		var he *wire.HandshakeError
		errors.As(err, &he)
		if he.Status == http.StatusUpgradeRequired {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		return h.refuse(w, r, meta, "bad_handshake", &wsproto.Refusal{Status: he.Status, Code: wsproto.CodeBadRequest, Message: he.Message})
	}
	if !h.enterRequest() {
		return h.refuse(w, r, meta, "shutting_down", &wsproto.Refusal{Status: http.StatusServiceUnavailable, Code: wsproto.CodeUnavailable,
			Message: "server is shutting down", RetryAfter: 5 * time.Second})
	}
	detached := false
	defer func() {
		if !detached {
			h.exitRequest()
		}
	}()
	if !h.opts.CheckOrigin(r) {
		return h.refuse(w, r, meta, "origin_rejected", &wsproto.Refusal{Status: http.StatusForbidden, Code: wsproto.CodeForbidden, Message: "origin not allowed"})
	}
	if !wire.Offers(r, h.codec.Subprotocol()) {
		return h.refuse(w, r, meta, "subprotocol_missing", &wsproto.Refusal{Status: http.StatusBadRequest, Code: wsproto.CodeBadRequest,
			Message: "the " + h.codec.Subprotocol() + " subprotocol is required"})
	}
	id, err := h.authenticate(w, r, &meta)
	if err != nil {
		return err
	}
	var release func()
	if id != nil {
		var rej *wsproto.Refusal
		if release, rej = h.admit(r.Context(), *id); rej != nil {
			return h.refuse(w, r, meta, admitEvent(rej), rej)
		}
	}
	up, err := wire.Accept(w, r, wire.Response{Subprotocol: h.codec.Subprotocol(), Compression: h.opts.Compression})
	if err != nil {
		if release != nil {
			release()
		}
		h.log.Info("upgrade_failed", meta.attrs(slog.String("reason", err.Error()))...)
		return err
	}
	c := newConn(h, h.opts.ConnContext(context.WithoutCancel(r.Context()), r), meta, up)
	c.release = release
	detached = true
	st := notStarted
	if id != nil {
		st = c.start(*id)
	}
	go c.runDetached(id, st, inflight.Detach(r.Context()))
	return nil
}

// authenticate reads and verifies the request's credential. A nil identity
// without error means the credential is expected in the first message. An
// error is the refusal, already written.
func (h *Hub) authenticate(w http.ResponseWriter, r *http.Request, meta *requestMeta) (*auth.Identity, error) {
	token, _, err := h.opts.Tokens.Extract(r)
	switch {
	case err == nil:
		ident, err := h.opts.Authenticator.Authenticate(r.Context(), token)
		if err == nil {
			meta.user, meta.tenant = ident.UserID, ident.TenantID
			return &ident, nil
		}
		reason := auth.Reason(err)
		h.obs.AuthFailed(reason)
		if errors.Is(err, auth.ErrKeyLookup) {
			// The keys could not be fetched: the credential may be good, so
			// the client keeps it and comes back.
			return nil, h.refuse(w, r, *meta, "key_lookup", &wsproto.Refusal{Status: http.StatusServiceUnavailable, Code: wsproto.CodeUnavailable,
				Message: "cannot verify credentials now", RetryAfter: 5 * time.Second})
		}
		return nil, h.refuse(w, r, *meta, "unauthorized", &wsproto.Refusal{Status: http.StatusUnauthorized, Code: wsproto.CodeUnauthorized, Message: "invalid credentials"},
			slog.String("reason", reason))
	case errors.Is(err, auth.ErrNoToken) && h.opts.FirstMessageAuth:
		return nil, nil
	default:
		reason := auth.Reason(err)
		h.obs.AuthFailed(reason)
		return nil, h.refuse(w, r, *meta, "unauthorized", &wsproto.Refusal{Status: http.StatusUnauthorized, Code: wsproto.CodeUnauthorized, Message: "credentials required"},
			slog.String("reason", reason))
	}
}

// admit applies Options.Admit for an authenticated identity. An error that
// is not a *protocol.Refusal is answered as the per-user limit.
func (h *Hub) admit(ctx context.Context, id auth.Identity) (func(), *wsproto.Refusal) {
	if h.opts.Admit == nil {
		return nil, nil
	}
	release, err := h.opts.Admit(ctx, id.UserID)
	if err == nil {
		return release, nil
	}
	var rej *wsproto.Refusal
	if !errors.As(err, &rej) {
		rej = &wsproto.Refusal{Status: http.StatusTooManyRequests, Code: wsproto.CodeConnectionLimit,
			Message: "too many connections", RetryAfter: 30 * time.Second, Err: err}
	}
	return nil, rej
}

// admitEvent names an Admit refusal in metrics and the log, by its code.
func admitEvent(rej *wsproto.Refusal) string {
	switch rej.Code {
	case wsproto.CodeConnectionLimit:
		return "user_connection_limit"
	case wsproto.CodeUnavailable:
		return "limiter_unavailable"
	}
	return "admit_" + strings.ToLower(rej.Code)
}

// refuse counts, logs and answers one refusal before the upgrade, in the
// security log's one schema for refusals, which guard's middleware uses
// too: the message "connection refused" and the refusal's event. It
// returns rej, for the handshake's tracer.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, meta requestMeta, event string, rej *wsproto.Refusal, extra ...slog.Attr) error {
	h.obs.Refused(event)
	if h.log.Enabled(r.Context(), slog.LevelWarn) {
		attrs := make([]slog.Attr, 0, 10+len(extra))
		attrs = append(attrs,
			slog.String("event", event),
			slog.String("ip", meta.ip),
			slog.String("origin", meta.origin),
			slog.String("user_agent", meta.userAgent),
			slog.String("path", meta.path),
		)
		if meta.user != "" {
			attrs = append(attrs, slog.String("user", truncate(meta.user)))
		}
		if meta.requestID != "" {
			attrs = append(attrs, slog.String("request_id", meta.requestID))
		}
		attrs = append(attrs, extra...)
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "connection refused", attrs...)
	}
	rej.Write(w)
	return rej
}

// maxLogged bounds attacker-controlled values in the log.
const maxLogged = 256

func truncate(s string) string {
	if len(s) > maxLogged {
		return s[:maxLogged] + "…"
	}
	return s
}
