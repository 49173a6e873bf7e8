package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// loginConversation is a conversation as the demo page lists it; member
// tells the page which ones the server will refuse, so the refusal can be
// tried on purpose.
type loginConversation struct {
	conversation
	Member bool `json:"member"`
}

type loginResponse struct {
	Token         string              `json:"token"`
	User          string              `json:"user"`
	ExpiresAt     time.Time           `json:"expiresAt"`
	Conversations []loginConversation `json:"conversations"`
}

// demoLogin logs the browser in as a seeded user: it sets the token cookie
// the WebSocket handshake authenticates with and returns the token for
// non-browser clients. It is registered in demo mode only.
func (s *server) demoLogin(w http.ResponseWriter, r *http.Request) {
	// A cross-site form could otherwise log a visitor in as someone else
	// (login CSRF); browsers always send Origin on a cross-site POST.
	if o := r.Header.Get("Origin"); o != "" && !s.gw.Origins().Allow(o) {
		writeJSONError(w, http.StatusForbidden, "FORBIDDEN", "origin not allowed")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
	user := r.PostFormValue("user")
	if !s.dir.isUser(user) {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "user must be one of the demo users")
		return
	}
	token, exp, err := s.demoToken(user)
	if err != nil {
		s.log.Error("demo_login_failed", slog.String("error", err.Error()))
		writeJSONError(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     tokenCookie,
		Value:    token,
		Path:     "/",
		Expires:  exp,
		HttpOnly: true, // page scripts never see the token
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
	resp := loginResponse{Token: token, User: user, ExpiresAt: exp.UTC()}
	for _, c := range s.dir.convs {
		resp.Conversations = append(resp.Conversations, loginConversation{
			conversation: c,
			Member:       s.dir.isParticipant(r.Context(), c.ID, user),
		})
	}
	s.log.Info("demo_login", slog.String("user", user))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// writeJSONError answers with the same {code, message} body as the hub's
// refusals, so the page parses one shape.
func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, message})
}
