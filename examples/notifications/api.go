package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// maxAPIBody bounds a request body. The largest valid body is 2,200
// characters of title and body; as \u escapes of 4-byte characters that is
// about 27 KB.
const maxAPIBody = 32 << 10

// Targets of POST /api/notifications.
const (
	targetUser   = "user"
	targetTenant = "tenant"
	targetGlobal = "global"
)

// notificationRequest is the body of POST /api/notifications. It is decoded
// with unknown fields refused, validated, and then its text is sanitized.
type notificationRequest struct {
	Target string `json:"target" validate:"required,oneof=user tenant global"`
	// ID names the user or tenant; it must be absent for global. Any id
	// authentication accepts is valid (see validID).
	ID    string `json:"id" validate:"required_unless=Target global,excluded_if=Target global"`
	Title string `json:"title" validate:"required,max=200" sanitize:"html"`
	Body  string `json:"body" validate:"max=2000" sanitize:"html"`
}

type acceptedResponse struct {
	ID string `json:"id"`
}

type onlineResponse struct {
	Tenant string   `json:"tenant"`
	Users  []string `json:"users"`
}

// Error codes of the API beyond the handshake ones.
const (
	codeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	codeTooLarge             = "PAYLOAD_TOO_LARGE"
	codeInternal             = "INTERNAL"
)

// apiTokens reads the API's credential from the Authorization header only:
// no cookie, so a cross-site form or fetch cannot ride on a browser
// session (CSRF), and no subprotocol entry, which means nothing outside a
// WebSocket handshake.
var apiTokens = auth.Extractor{DisableSubprotocol: true}

// authenticated runs next with the caller's identity, or answers 429 when
// the client IP sends too many API requests and 401 without a valid bearer
// token.
func (s *server) authenticated(next func(http.ResponseWriter, *http.Request, auth.Identity)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := s.throttle.ClientIP(r)
		if ok, retry := s.apiLimit.Allow(ip); !ok {
			s.log.Warn("api_rate_limited", slog.String("ip", addrString(ip)))
			writeJSONError(w, http.StatusTooManyRequests, "RATE_LIMITED", "too many requests", retry)
			return
		}
		token, _, err := apiTokens.Extract(r)
		var id auth.Identity
		if err == nil {
			id, err = s.verifier.Authenticate(r.Context(), token)
		}
		if err != nil {
			s.log.Warn("api_auth_failed", slog.String("ip", addrString(ip)), slog.String("reason", auth.Reason(err)))
			w.Header().Set("WWW-Authenticate", `Bearer realm="notifications"`)
			writeJSONError(w, http.StatusUnauthorized, "UNAUTHORIZED", "a valid bearer token is required", 0)
			return
		}
		next(w, r, id)
	})
}

// publishNotification is POST /api/notifications: validate, authorize, then
// one broadcast through the hub (one script call on Redis, whatever the
// number of recipients). It answers 202 with the notification id; delivery
// is not awaited. The user and tenant rooms keep their last notifications
// for two minutes, which a client that reconnects recovers; with an
// Idempotency-Key, a retry is not delivered twice.
func (s *server) publishNotification(w http.ResponseWriter, r *http.Request, caller auth.Identity) {
	log := s.log.With(slog.String("user", caller.UserID), slog.String("tenant", caller.TenantID))
	req, status, code, msg := s.decodeRequest(w, r)
	if status != 0 {
		log.Info("api_invalid", slog.String("reason", msg))
		writeJSONError(w, status, code, msg, 0)
		return
	}
	if !s.mayNotify(r, caller, req) {
		log.Warn("api_forbidden", slog.String("target", req.Target), slog.String("to", req.ID))
		writeJSONError(w, http.StatusForbidden, "FORBIDDEN", "not allowed to notify this target", 0)
		return
	}
	id, opts, ok := idempotency(r, caller)
	if !ok {
		log.Info("api_invalid", slog.String("reason", "idempotency key"))
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "Idempotency-Key must be 1 to 128 visible ASCII characters", 0)
		return
	}
	n := notification{
		ID:        id,
		Target:    req.Target,
		To:        req.ID,
		Title:     req.Title,
		Body:      req.Body,
		From:      caller.UserID,
		CreatedAt: time.Now().UTC(),
	}
	var err error
	switch req.Target {
	case targetUser:
		err = s.hub.ToUser(r.Context(), req.ID, eventNew, n, opts...)
	case targetTenant:
		err = s.hub.ToTenant(r.Context(), req.ID, eventNew, n, opts...)
	case targetGlobal:
		// The global room, not ToAll: it holds the SUPER_ADMIN connections
		// only, which is what "global" means in the audited gateway.
		err = s.hub.Broadcast(r.Context(), room.Global, eventNew, n, opts...)
	}
	if err != nil {
		log.Error("notification_publish_failed", slog.String("notification_id", n.ID), slog.String("error", err.Error()))
		writeJSONError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "notifications are unavailable, retry later", 5*time.Second)
		return
	}
	log.Info("notification_published", slog.String("notification_id", n.ID),
		slog.String("target", req.Target), slog.String("to", req.ID))
	writeJSON(w, http.StatusAccepted, acceptedResponse{ID: n.ID})
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 128

// idempotency reads the Idempotency-Key header. With one, the notification's
// id is derived from the caller and the key, and the publish is idempotent:
// a retry with the same key within two minutes (after a 503, a timeout, a
// lost answer) is answered 202 with the same id and delivers nothing again,
// across instances on Redis. The key is the caller's: another caller's
// identical key is another notification. ok is false for a malformed key.
func idempotency(r *http.Request, caller auth.Identity) (id string, opts []hub.BroadcastOption, ok bool) {
	keys := r.Header.Values("Idempotency-Key")
	if len(keys) == 0 {
		return newUUID(), nil, true
	}
	key := keys[0]
	if len(keys) > 1 || key == "" || len(key) > maxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return "", nil, false
	}
	sum := sha256.Sum256([]byte(strconv.Itoa(len(caller.UserID)) + ":" + caller.UserID + ":" + key))
	return uuidFrom(sum), []hub.BroadcastOption{hub.Idempotent(hex.EncodeToString(sum[:]))}, true
}

// decodeRequest reads and checks the body. A non-zero status is the refusal
// to send; its message names the client's mistake and nothing else.
func (s *server) decodeRequest(w http.ResponseWriter, r *http.Request) (req notificationRequest, status int, code, msg string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "the body must be application/json"
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return req, http.StatusRequestEntityTooLarge, codeTooLarge, "the body is too large"
		}
		return req, http.StatusBadRequest, "BAD_REQUEST", jsonProblem(err)
	}
	if dec.More() {
		return req, http.StatusBadRequest, "BAD_REQUEST", "trailing data after the JSON object"
	}
	if err := s.validate.Struct(&req); err != nil {
		return req, http.StatusBadRequest, "BAD_REQUEST", validationProblem(err)
	}
	if req.Target != targetGlobal && !validID(req.ID) {
		return req, http.StatusBadRequest, "BAD_REQUEST", `field "id" must be 1 to 256 bytes without control characters`
	}
	if err := s.sanitizer.Struct(&req); err != nil {
		return req, http.StatusInternalServerError, codeInternal, "internal error"
	}
	// Validation ran on the raw text: a title of markup only is empty now.
	if strings.TrimSpace(req.Title) == "" {
		return req, http.StatusBadRequest, "BAD_REQUEST", `field "title" is empty once HTML is removed`
	}
	return req, 0, "", ""
}

// validID reports whether id can be a user or tenant id: what auth.JWT
// accepts as a sub or tenant (at most auth.MaxClaimBytes of UTF-8 without
// control characters), which is also what has a room name, escaped if
// need be ("auth0|507f…" is user:auth0%7C507f…).
func validID(id string) bool {
	return room.Valid(room.User(id)) && len(id) <= auth.MaxClaimBytes &&
		utf8.ValidString(id) && !strings.ContainsFunc(id, unicode.IsControl)
}

// mayNotify is the API's authorization rule:
//
//   - global: SUPER_ADMIN only;
//   - tenant: SUPER_ADMIN, or an ADMIN whose own tenant it is;
//   - user: SUPER_ADMIN, or an ADMIN of the tenant the user belongs to.
//
// A plain user may notify nobody, not even a colleague: notifications come
// from the system or an administrator, and letting any member push text to
// any other member's screen is a phishing channel. An admin gets the same
// 403 for a user of another tenant and for a user who does not exist, so
// the API does not reveal who exists where.
func (s *server) mayNotify(r *http.Request, caller auth.Identity, req notificationRequest) bool {
	if caller.HasRole(superAdminRole) {
		return true
	}
	if !caller.HasRole(adminRole) || caller.TenantID == "" {
		return false
	}
	switch req.Target {
	case targetTenant:
		return req.ID == caller.TenantID
	case targetUser:
		a, ok := s.dir.lookup(r.Context(), req.ID)
		return ok && a.Tenant == caller.TenantID
	}
	return false
}

// tenantOnline is GET /api/tenants/{id}/online: the users with a
// connection in the tenant's room, on every node when presence is shared
// (Redis), for the tenant's ADMIN or a SUPER_ADMIN.
func (s *server) tenantOnline(w http.ResponseWriter, r *http.Request, caller auth.Identity) {
	tenant := r.PathValue("id")
	if !validID(tenant) {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "invalid tenant id", 0)
		return
	}
	if !caller.HasRole(superAdminRole) && !(caller.HasRole(adminRole) && caller.TenantID == tenant) {
		s.log.Warn("api_forbidden", slog.String("user", caller.UserID), slog.String("tenant", caller.TenantID),
			slog.String("target", "presence"), slog.String("to", tenant))
		writeJSONError(w, http.StatusForbidden, "FORBIDDEN", "not allowed to see this tenant", 0)
		return
	}
	users, err := s.hub.Presence(r.Context(), room.Tenant(tenant))
	if err != nil {
		s.log.Error("presence_failed", slog.String("error", err.Error()))
		writeJSONError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "presence is unavailable, retry later", 5*time.Second)
		return
	}
	slices.Sort(users)
	writeJSON(w, http.StatusOK, onlineResponse{Tenant: tenant, Users: users})
}

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	// Report JSON names, which are what the client sent.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		return name
	})
	return v
}

// validationProblem names the first failing field and rule.
func validationProblem(err error) string {
	var ves validator.ValidationErrors
	if errors.As(err, &ves) && len(ves) > 0 {
		fe := ves[0]
		if fe.Tag() == "excluded_if" {
			return `field "id" must be absent for a global notification`
		}
		return `field "` + fe.Field() + `" fails "` + fe.Tag() + `"`
	}
	return "invalid body"
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ute) && ute.Field != "":
		return `field "` + ute.Field + `" has the wrong type`
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "the body is not a JSON object"
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONError answers with the same {code, message} body as the hub's
// handshake refusals, so clients parse one shape.
func writeJSONError(w http.ResponseWriter, status int, code, message string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	writeJSON(w, status, struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, message})
}
