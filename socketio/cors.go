package socketio

import (
	"net/http"
)

// CORS for long-polling from pages of another origin. The answers name the
// one origin of the request, never "*": a page that polls with
// withCredentials (for the sticky cookie) needs its origin echoed, and the
// rest get nothing. The origin check still refuses, with 403, every
// request whose Origin the allowlist refuses, whatever CORS says.

// corsMaxAge is how long a browser may cache a preflight's answer.
const corsMaxAge = "600"

// maxRequestHeaders bounds the Access-Control-Request-Headers echoed back.
const maxRequestHeaders = 512

// cors adds the CORS headers of an allowed origin to a polling answer.
func (srv *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin, ok := srv.corsOrigin(r)
	h := w.Header()
	if srv.opts.CORS != nil {
		h.Add("Vary", "Origin")
	}
	if ok {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// preflight answers an OPTIONS request: 204 with the CORS headers for an
// allowed origin, 403 otherwise. It touches no session and counts against
// no limit.
func (srv *Server) preflight(w http.ResponseWriter, r *http.Request) {
	origin, ok := srv.corsOrigin(r)
	h := w.Header()
	h.Add("Vary", "Origin")
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && len(req) <= maxRequestHeaders && headerList(req) {
		h.Set("Access-Control-Allow-Headers", req)
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// corsOrigin returns the request's one Origin when CORS allows it.
func (srv *Server) corsOrigin(r *http.Request) (string, bool) {
	if srv.opts.CORS == nil {
		return "", false
	}
	vals := r.Header.Values("Origin")
	if len(vals) != 1 || vals[0] == "" || !srv.opts.CORS(vals[0]) {
		return "", false
	}
	return vals[0], true
}

// headerList reports a comma-separated list of header names (RFC 9110
// tokens), safe to echo in a response header.
func headerList(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == ',' || c == ' ':
		default:
			return false
		}
	}
	return true
}
