package hub

import (
	"context"
	"net/http"
	"time"
)

// LivenessHandler answers 200 for as long as the process can serve HTTP:
// mount it at /healthz. It does not look at the broker, so a Redis
// outage does not get the node restarted.
func (h *Hub) LivenessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
}

// ReadinessHandler answers 200 while the hub accepts connections and its
// broker is healthy, 503 otherwise (shutting down, broker down): mount it at
// /readyz so the load balancer stops sending new connections. The body names
// the cause in general terms only.
func (h *Hub) ReadinessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		switch err := h.Ready(ctx); {
		case err == nil:
			_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
		case h.closing.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"shutting_down"}` + "\n"))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"broker_unavailable"}` + "\n"))
		}
	})
}
