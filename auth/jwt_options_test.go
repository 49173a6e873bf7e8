package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
)

func TestNewJWT(t *testing.T) {
	keyfunc := func(context.Context, string, string) ([]crypto.PublicKey, error) { return nil, errJWKSDown }
	smallRSA := must(rsa.GenerateKey(rand.Reader, 1024))
	p224 := must(ecdsa.GenerateKey(elliptic.P224(), rand.Reader))
	tests := []struct {
		name    string
		opts    auth.JWTOptions
		wantErr error // nil: the options are accepted
	}{
		{"hmac_secret_of_32_bytes_is_accepted", auth.JWTOptions{HMACSecret: secret}, nil},
		{"rsa_public_key_is_accepted", auth.JWTOptions{PublicKey: &rsaKey().PublicKey}, nil},
		{"ecdsa_public_key_is_accepted", auth.JWTOptions{PublicKey: &ecKey().PublicKey}, nil},
		{"ed25519_public_key_is_accepted", auth.JWTOptions{PublicKey: edKey().Public()}, nil},
		{"keyfunc_with_algorithms_is_accepted", auth.JWTOptions{KeyFunc: keyfunc, Algorithms: []string{"RS256", "ES256"}}, nil},
		{"explicit_subset_of_the_key_family_is_accepted", auth.JWTOptions{PublicKey: &rsaKey().PublicKey, Algorithms: []string{"PS256"}}, nil},
		{"leeway_of_five_minutes_is_accepted", auth.JWTOptions{HMACSecret: secret, Leeway: auth.MaxLeeway}, nil},

		{"no_key_is_refused", auth.JWTOptions{}, auth.ErrNoKey},
		{"empty_secret_is_no_key_not_a_fallback", auth.JWTOptions{HMACSecret: []byte{}}, auth.ErrNoKey},
		{"algorithms_alone_are_no_key", auth.JWTOptions{Algorithms: []string{"HS256"}}, auth.ErrNoKey},
		{"short_secret_is_refused", auth.JWTOptions{HMACSecret: secret[:31]}, auth.ErrInvalidOptions},
		{"none_algorithm_is_refused", auth.JWTOptions{HMACSecret: secret, Algorithms: []string{"HS256", "none"}}, auth.ErrInvalidOptions},
		{"none_algorithm_is_refused_with_keyfunc", auth.JWTOptions{KeyFunc: keyfunc, Algorithms: []string{"none"}}, auth.ErrInvalidOptions},
		{"unknown_algorithm_is_refused", auth.JWTOptions{HMACSecret: secret, Algorithms: []string{"HS1024"}}, auth.ErrInvalidOptions},
		{"hs256_with_an_rsa_key_is_refused", auth.JWTOptions{PublicKey: &rsaKey().PublicKey, Algorithms: []string{"RS256", "HS256"}}, auth.ErrInvalidOptions},
		{"rs256_with_an_hmac_secret_is_refused", auth.JWTOptions{HMACSecret: secret, Algorithms: []string{"RS256"}}, auth.ErrInvalidOptions},
		{"es384_with_a_p256_key_is_refused", auth.JWTOptions{PublicKey: &ecKey().PublicKey, Algorithms: []string{"ES384"}}, auth.ErrInvalidOptions},
		{"eddsa_with_an_ecdsa_key_is_refused", auth.JWTOptions{PublicKey: &ecKey().PublicKey, Algorithms: []string{"EdDSA"}}, auth.ErrInvalidOptions},
		{"secret_and_public_key_together_are_refused", auth.JWTOptions{HMACSecret: secret, PublicKey: &rsaKey().PublicKey}, auth.ErrInvalidOptions},
		{"public_key_and_keyfunc_together_are_refused", auth.JWTOptions{PublicKey: &rsaKey().PublicKey, KeyFunc: keyfunc, Algorithms: []string{"RS256"}}, auth.ErrInvalidOptions},
		{"keyfunc_without_algorithms_is_refused", auth.JWTOptions{KeyFunc: keyfunc}, auth.ErrInvalidOptions},
		{"keyfunc_mixing_hmac_and_rsa_is_refused", auth.JWTOptions{KeyFunc: keyfunc, Algorithms: []string{"RS256", "HS256"}}, auth.ErrInvalidOptions},
		{"rsa_private_key_is_refused", auth.JWTOptions{PublicKey: rsaKey()}, auth.ErrInvalidOptions},
		{"rsa_key_of_1024_bits_is_refused", auth.JWTOptions{PublicKey: &smallRSA.PublicKey}, auth.ErrInvalidOptions},
		{"ecdsa_key_on_p224_is_refused", auth.JWTOptions{PublicKey: &p224.PublicKey}, auth.ErrInvalidOptions},
		{"pem_bytes_as_public_key_are_refused", auth.JWTOptions{PublicKey: rsaPEM()}, auth.ErrInvalidOptions},
		{"leeway_over_five_minutes_is_refused", auth.JWTOptions{HMACSecret: secret, Leeway: auth.MaxLeeway + time.Second}, auth.ErrInvalidOptions},
		{"negative_leeway_is_refused", auth.JWTOptions{HMACSecret: secret, Leeway: -time.Second}, auth.ErrInvalidOptions},
		{"negative_max_token_bytes_is_refused", auth.JWTOptions{HMACSecret: secret, MaxTokenBytes: -1}, auth.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := auth.NewJWT(tt.opts)
			if tt.wantErr == nil {
				if err != nil || j == nil {
					t.Fatalf("NewJWT = %v, %v; want an authenticator", j, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewJWT error = %v, want %v", err, tt.wantErr)
			}
			if j != nil {
				t.Fatal("NewJWT returned an authenticator alongside an error")
			}
		})
	}
}

func TestNewJWTCopiesTheSecret(t *testing.T) {
	buf := append([]byte(nil), secret...)
	j := newJWT(t, auth.JWTOptions{HMACSecret: buf})
	for i := range buf {
		buf[i] = 'z'
	}
	token := sign(t, jwt.SigningMethodHS256, secret, claims())
	if _, err := j.Authenticate(t.Context(), token); err != nil {
		t.Fatalf("token signed with the original secret refused after the caller reused its buffer: %v", err)
	}
}
