package guard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wsgate/wsgate/guard"
)

func ExampleNewOrigins() {
	origins, err := guard.NewOrigins(guard.OriginOptions{
		Allowed: []string{"https://app.example.com", "https://*.example.com"},
	})
	if err != nil {
		panic(err)
	}
	for _, o := range []string{
		"https://app.example.com",
		"https://chat.eu.example.com",
		"https://example.com.evil.net",
		"https://app.example.com@evil.net",
		"null",
	} {
		fmt.Println(o, origins.Allow(o))
	}

	_, err = guard.NewOrigins(guard.OriginOptions{Allowed: []string{"*"}})
	fmt.Println(err != nil)
	// Output:
	// https://app.example.com true
	// https://chat.eu.example.com true
	// https://example.com.evil.net false
	// https://app.example.com@evil.net false
	// null false
	// true
}

func ExampleChain() {
	origins, err := guard.NewOrigins(guard.OriginOptions{Allowed: []string{"https://app.example.com"}})
	if err != nil {
		panic(err)
	}
	throttle, err := guard.NewThrottle(guard.ThrottleOptions{})
	if err != nil {
		panic(err)
	}
	limits, err := guard.NewLimits(guard.LimitsOptions{})
	if err != nil {
		panic(err)
	}
	// hub stands in for the WebSocket endpoint.
	hub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "upgrade")
	})
	// The throttle is outermost so that refused origins still count as
	// attempts.
	h := guard.Chain(hub, throttle.Middleware, origins.Middleware, limits.Middleware)

	for _, origin := range []string{"https://app.example.com", "https://evil.example.net"} {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Origin", origin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(w.Code, strings.TrimSpace(w.Body.String()))
	}
	// Output:
	// 200 upgrade
	// 403 {"code":"FORBIDDEN","message":"origin not allowed"}
}
