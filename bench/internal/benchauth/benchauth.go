// Package benchauth is the credential every contender of the comparison
// checks: an HS256 JWT with a subject and an expiry, signed with one shared
// secret. The load generator mints tokens; the servers that do not use
// wsgate's own authenticator verify them here, so that every contender pays
// for the same verification.
package benchauth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Secret signs and verifies every token of the benchmark. It only protects
// loopback traffic between two processes of one run.
var Secret = []byte("wsgate-bench-secret-of-at-least-32-bytes!")

// Mint returns a token for user sub that expires after ttl.
func Mint(sub string, ttl time.Duration) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub,
		"exp": time.Now().Add(ttl).Unix(),
	}).SignedString(Secret)
}

var parser = jwt.NewParser(
	jwt.WithValidMethods([]string{"HS256"}),
	jwt.WithExpirationRequired(),
	jwt.WithLeeway(10*time.Second),
)

// Verify checks tok and returns its subject and expiry.
func Verify(tok string) (sub string, exp time.Time, err error) {
	claims := jwt.MapClaims{}
	if _, err := parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return Secret, nil }); err != nil {
		return "", time.Time{}, fmt.Errorf("benchauth: %w", err)
	}
	sub, err = claims.GetSubject()
	if err != nil || sub == "" {
		return "", time.Time{}, errors.New("benchauth: no subject")
	}
	e, err := claims.GetExpirationTime()
	if err != nil || e == nil {
		return "", time.Time{}, errors.New("benchauth: no expiry")
	}
	return sub, e.Time, nil
}

// Bearer returns the token of an "Authorization: Bearer" header value.
func Bearer(header string) (string, bool) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	return tok, ok && tok != ""
}
