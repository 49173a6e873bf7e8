package guard

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/wsgate/wsgate/protocol"
)

// Event names of the security log. They are stable: operators alert on
// them.
const (
	eventOriginRejected   = "origin_rejected"
	eventThrottled        = "handshake_throttled"
	eventNodeFull         = "node_full"
	eventUserLimit        = "user_connection_limit"
	maxLoggedHeaderLength = 256
)

// discard is the logger used when the options carry none: a library must not
// write to the process-wide slog.Default behind its user's back.
var discard = slog.New(slog.DiscardHandler)

func loggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return discard
	}
	return l
}

// Observer counts refusals, for metrics. Refused receives the security log's
// event name: "origin_rejected", "handshake_throttled" or "node_full".
// (Limits.Admit refusals are counted by its caller, the hub, as
// "user_connection_limit".) It must be cheap and safe for concurrent use;
// hub.Observer implementations satisfy it.
type Observer interface {
	Refused(reason string)
}

type nopObserver struct{}

func (nopObserver) Refused(string) {}

func observerOrNop(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}

// reqInfo is what a refusal may say about the request. It is deliberately
// small: no query string (tokens travel there), no other headers.
type reqInfo struct {
	ip, origin, userAgent, path string
}

// infoOf collects the loggable attributes of r. An empty ip means "the
// client address Throttle.Middleware resolved, if it ran, else the peer".
func infoOf(r *http.Request, ip string) reqInfo {
	if ip == "" {
		if a, ok := r.Context().Value(clientIPKey{}).(netip.Addr); ok && a.IsValid() {
			ip = a.String()
		} else {
			ip = remoteHost(r.RemoteAddr)
		}
	}
	return reqInfo{
		ip:        ip,
		origin:    truncate(r.Header.Get("Origin")),
		userAgent: truncate(r.Header.Get("User-Agent")),
		path:      truncate(r.URL.Path),
	}
}

// refuse counts, logs and answers one refusal of a middleware: one place, so
// that every guard says the same things about the refusals it makes.
func refuse(w http.ResponseWriter, r *http.Request, obs Observer, l *slog.Logger, event string, info reqInfo, rej *protocol.Refusal) {
	obs.Refused(event)
	logRefusal(r.Context(), l, event, info, "")
	rej.Write(w)
}

// logRefusal writes the one Warn line a refusal produces. user is empty when
// the refusal happened before authentication.
func logRefusal(ctx context.Context, l *slog.Logger, event string, info reqInfo, user string) {
	if !l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs,
		slog.String("event", event),
		slog.String("ip", info.ip),
		slog.String("origin", info.origin),
		slog.String("user_agent", info.userAgent),
		slog.String("path", info.path),
	)
	if user != "" {
		attrs = append(attrs, slog.String("user", truncate(user)))
	}
	l.LogAttrs(ctx, slog.LevelWarn, "connection refused", attrs...)
}

// truncate bounds attacker-controlled values so that a refusal flood cannot
// also become a log-volume flood of multi-kilobyte lines.
func truncate(s string) string {
	if len(s) > maxLoggedHeaderLength {
		return s[:maxLoggedHeaderLength] + "…"
	}
	return s
}

// remoteHost strips the port from an http.Request.RemoteAddr; a value without
// a port is returned unchanged.
func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

type (
	reqInfoKey  struct{}
	clientIPKey struct{}
)

// withReqInfo lets Limits.Admit, which only sees a context, log the same
// request attributes as the middleware that saw the request.
func withReqInfo(ctx context.Context, info reqInfo) context.Context {
	return context.WithValue(ctx, reqInfoKey{}, info)
}

func reqInfoFrom(ctx context.Context) reqInfo {
	info, _ := ctx.Value(reqInfoKey{}).(reqInfo)
	return info
}
