package auth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
)

func ExampleNewJWT() {
	// In production the secret comes from configuration; an empty one makes
	// NewJWT fail with ErrNoKey instead of falling back to a default.
	secret := []byte("example-secret-at-least-32-bytes-long")
	issued := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := issued

	verifier, err := auth.NewJWT(auth.JWTOptions{
		HMACSecret: secret,
		Issuer:     "https://id.example.com",
		Audience:   "chat",
		Now:        func() time.Time { return clock },
	})
	if err != nil {
		log.Fatal(err)
	}

	// The identity provider issues the token; it is signed here to keep the
	// example self-contained.
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss":       "https://id.example.com",
		"aud":       "chat",
		"sub":       "user-42",
		"tenant_id": "acme",
		"roles":     []string{"agent", "admin"},
		"exp":       issued.Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		log.Fatal(err)
	}

	id, err := verifier.Authenticate(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.UserID, id.TenantID, id.Roles, id.HasRole("admin"))
	fmt.Println("expires", id.ExpiresAt.UTC().Format(time.RFC3339))

	clock = issued.Add(2 * time.Hour)
	_, err = verifier.Authenticate(context.Background(), token)
	fmt.Println("two hours later:", errors.Is(err, auth.ErrTokenExpired))
	// Output:
	// user-42 acme [agent admin] true
	// expires 2030-01-01T13:00:00Z
	// two hours later: true
}

func ExampleExtractor_Extract() {
	// A browser offers the token as a pseudo-subprotocol, next to the real
	// one: new WebSocket(url, ["wsgate.v1", "wsgate.bearer." + token]).
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Sec-WebSocket-Protocol", "wsgate.v1, wsgate.bearer.eyJhbGciOiJIUzI1NiJ9.e30.c2ln")

	token, src, err := auth.Extractor{}.Extract(r)
	fmt.Println(token, src, err)

	// Without any credential the error is ErrNoToken: answer 401.
	_, _, err = auth.Extractor{}.Extract(httptest.NewRequest(http.MethodGet, "/ws", nil))
	fmt.Println(errors.Is(err, auth.ErrNoToken))
	// Output:
	// eyJhbGciOiJIUzI1NiJ9.e30.c2ln subprotocol <nil>
	// true
}

func ExampleRedactURL() {
	r := httptest.NewRequest(http.MethodGet, "/ws?room=lobby&access_token=eyJhbGciOiJIUzI1NiJ9.e30.c2ln", nil)
	fmt.Println(auth.RedactURL(r.URL, "access_token"))
	// Output:
	// /ws?room=lobby&access_token=REDACTED
}
