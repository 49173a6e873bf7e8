package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
)

// FuzzJWTAuthenticate feeds arbitrary strings to an HMAC and an RSA verifier.
// Properties: no panic; every error wraps one of the package's sentinels; and
// nothing authenticates unless this process signed exactly that token. With
// canonical base64 required, a valid signature admits one token string, so
// "accepted" must mean "one of ours".
func FuzzJWTAuthenticate(f *testing.F) {
	verifiers := []*auth.JWT{newJWT(f, hmacOpts()), newJWT(f, rsaOpts())}
	genuine := map[string]bool{}
	signed := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		tok := sign(f, m, key, c)
		genuine[tok] = true
		return tok
	}
	seeds := []string{
		signed(jwt.SigningMethodHS256, secret, claims()),
		signed(jwt.SigningMethodHS512, secret, claims(jwt.MapClaims{"roles": []string{"admin"}, "tenant_id": "acme"})),
		signed(jwt.SigningMethodHS256, secret, claims(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})),
		signed(jwt.SigningMethodRS256, rsaKey(), claims(jwt.MapClaims{"roles": "a b"})),
		signed(jwt.SigningMethodPS256, rsaKey(), claims()),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims()),
		sign(f, jwt.SigningMethodHS256, rsaPEM(), claims()),
		sign(f, jwt.SigningMethodES256, ecKey(), claims()),
		"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
		strings.Repeat(".", 9000),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	sentinels := []error{auth.ErrNoToken, auth.ErrInvalidToken, auth.ErrTokenExpired, auth.ErrTokenTooLarge}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range verifiers {
			id, err := v.Authenticate(ctx, token)
			if err == nil {
				if !genuine[token] {
					t.Fatalf("authenticated a token this test never signed: %q", token)
				}
				if id.UserID == "" || id.ExpiresAt.IsZero() {
					t.Fatalf("authenticated with an incomplete identity %+v", id)
				}
				continue
			}
			if !wrapsAny(err, sentinels) {
				t.Fatalf("error %q wraps none of the package sentinels", err)
			}
			if len(token) >= 64 && strings.Contains(err.Error(), token) {
				t.Fatalf("error message contains the token: %q", err)
			}
		}
	})
}

func wrapsAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func BenchmarkJWTVerifyHS256(b *testing.B) {
	benchmarkVerify(b, newJWT(b, hmacOpts()), func() string {
		return sign(b, jwt.SigningMethodHS256, secret, benchClaims())
	})
}

func BenchmarkJWTVerifyES256(b *testing.B) {
	benchmarkVerify(b, newJWT(b, auth.JWTOptions{PublicKey: &ecKey().PublicKey}), func() string {
		return sign(b, jwt.SigningMethodES256, ecKey(), benchClaims())
	})
}

// BenchmarkJWTRefuseOversized measures what a flood of 1 MB tokens costs.
func BenchmarkJWTRefuseOversized(b *testing.B) {
	j := newJWT(b, hmacOpts())
	huge := strings.Repeat(".", 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Authenticate(context.Background(), huge); !errors.Is(err, auth.ErrTokenTooLarge) {
			b.Fatal(err)
		}
	}
}

// benchClaims is a realistic payload: issuer, audience, tenant and roles.
func benchClaims() jwt.MapClaims {
	return claims(jwt.MapClaims{
		"iss": "https://id.example.com", "aud": "chat",
		"tenant_id": "acme", "roles": []string{"agent", "admin"},
	})
}

func benchmarkVerify(b *testing.B, j *auth.JWT, token func() string) {
	tok := token()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Authenticate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
