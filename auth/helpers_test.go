package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
)

// now is the fixed instant every test verifies at, so that no test depends on
// the wall clock.
var now = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

// secret is exactly auth.MinHMACSecretBytes long.
var secret = []byte("0123456789abcdef0123456789abcdef")

// Keys are generated once per test binary: RSA generation is slow enough to
// matter when repeated per case.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	ecKey  = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ec384  = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	edKey  = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	// rsaPEM is the RSA public key as a PEM document: what an attacker uses
	// as the "secret" of an HS256 token in an alg-confusion attack.
	rsaPEM = sync.OnceValue(func() []byte {
		der := must(x509.MarshalPKIXPublicKey(&rsaKey().PublicKey))
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	})
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// claims returns valid claims for user-1 expiring in an hour, with edits
// applied; an edit setting a claim to nil deletes it.
func claims(edits ...jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "user-1",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for _, e := range edits {
		maps.Copy(c, e)
	}
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	return c
}

func sign(tb testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		tb.Fatalf("signing %s: %v", m.Alg(), err)
	}
	return s
}

// newJWT builds an authenticator at the fixed test clock unless opts sets
// its own.
func newJWT(tb testing.TB, opts auth.JWTOptions) *auth.JWT {
	tb.Helper()
	if opts.Now == nil {
		opts.Now = clock
	}
	j, err := auth.NewJWT(opts)
	if err != nil {
		tb.Fatalf("NewJWT: %v", err)
	}
	return j
}

// assertNoTokenInError checks the promise that errors are safe to log.
func assertNoTokenInError(tb testing.TB, err error, token string) {
	tb.Helper()
	if err == nil || token == "" {
		return
	}
	msg := err.Error()
	if strings.Contains(msg, token) {
		tb.Fatalf("error message contains the token: %q", msg)
	}
	for seg := range strings.SplitSeq(token, ".") {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			tb.Fatalf("error message contains a token segment: %q", msg)
		}
	}
}
