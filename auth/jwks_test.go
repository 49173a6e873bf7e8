package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/internal/testutil"
)

// jwksServer is an identity provider's JWKS endpoint on loopback: it
// serves the current key set, or 503 while down, and counts the fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	down    atomic.Bool
	mu      sync.Mutex
	body    []byte
}

func newJWKSServer(t *testing.T, keys map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.publish(t, keys)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// publish replaces the served set with keys, by kid.
func (s *jwksServer) publish(t *testing.T, keys map[string]any) {
	t.Helper()
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for kid, k := range keys {
		switch k := k.(type) {
		case *ecdsa.PublicKey:
			pt, err := k.Bytes() // 0x04 || X || Y
			if err != nil {
				t.Fatal(err)
			}
			n := (len(pt) - 1) / 2
			set.Keys = append(set.Keys, map[string]string{"kty": "EC", "crv": k.Curve.Params().Name, "kid": kid,
				"use": "sig", "x": b64(pt[1 : 1+n]), "y": b64(pt[1+n:])})
		case *rsa.PublicKey:
			set.Keys = append(set.Keys, map[string]string{"kty": "RSA", "kid": kid, "use": "sig",
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
		default:
			t.Fatalf("unsupported test key %T", k)
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

// signKid signs claims() with key, naming kid in the header.
func signKid(t *testing.T, m jwt.SigningMethod, key any, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims())
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newJWKSVerifier(t *testing.T, url string, o auth.JWKSOptions, algs ...string) *auth.JWT {
	t.Helper()
	j := newJWT(t, auth.JWTOptions{JWKSURL: url, JWKS: o, Algorithms: algs})
	t.Cleanup(func() { j.Close() })
	return j
}

func authReason(j *auth.JWT, token string) string {
	if _, err := j.Authenticate(context.Background(), token); err != nil {
		return auth.Reason(err)
	}
	return "ok"
}

func TestJWKS(t *testing.T) {
	k1 := ecKey()
	k2 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	stranger := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	slow := auth.JWKSOptions{UnknownKeyInterval: time.Hour}

	t.Run("key_from_the_set_verifies", func(t *testing.T) {
		srv := newJWKSServer(t, map[string]any{"k1": &k1.PublicKey})
		j := newJWKSVerifier(t, srv.URL, slow)
		id, err := j.Authenticate(context.Background(), signKid(t, jwt.SigningMethodES256, k1, "k1"))
		if err != nil || id.UserID != "user-1" {
			t.Fatalf("Authenticate = %+v, %v", id, err)
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches, want the one at NewJWT", n)
		}
	})
	t.Run("rotation_fetches_the_new_set_on_the_first_unknown_kid", func(t *testing.T) {
		srv := newJWKSServer(t, map[string]any{"k1": &k1.PublicKey})
		j := newJWKSVerifier(t, srv.URL, slow)
		srv.publish(t, map[string]any{"k2": &k2.PublicKey})
		if got := authReason(j, signKid(t, jwt.SigningMethodES256, k2, "k2")); got != "ok" {
			t.Fatalf("token of the new key: %s", got)
		}
		if n := srv.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
		// The refetch replaced the set: the retired key no longer verifies.
		if got := authReason(j, signKid(t, jwt.SigningMethodES256, k1, "k1")); got != "invalid" {
			t.Fatalf("token of the retired key: %s, want invalid", got)
		}
	})
	t.Run("unknown_kids_are_invalid_and_refetch_at_most_once_per_interval", func(t *testing.T) {
		srv := newJWKSServer(t, map[string]any{"k1": &k1.PublicKey})
		j := newJWKSVerifier(t, srv.URL, slow)
		for _, kid := range []string{"x1", "x2", "x3", "x4", "x5"} {
			tok := signKid(t, jwt.SigningMethodES256, stranger, kid)
			_, err := j.Authenticate(context.Background(), tok)
			if !errors.Is(err, auth.ErrInvalidToken) || auth.Reason(err) != "invalid" {
				t.Fatalf("kid %s: %v, want invalid", kid, err)
			}
			assertNoTokenInError(t, err, tok)
		}
		if n := srv.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches for five unknown kids, want 2 (NewJWT and one refetch)", n)
		}
	})
	t.Run("outage_is_key_lookup_and_known_keys_still_verify", func(t *testing.T) {
		srv := newJWKSServer(t, map[string]any{"k1": &k1.PublicKey})
		j := newJWKSVerifier(t, srv.URL, auth.JWKSOptions{UnknownKeyInterval: 10 * time.Millisecond})
		srv.down.Store(true)
		_, err := j.Authenticate(context.Background(), signKid(t, jwt.SigningMethodES256, k2, "k2"))
		if !errors.Is(err, auth.ErrKeyLookup) || errors.Is(err, auth.ErrInvalidToken) || auth.Reason(err) != "key_lookup" {
			t.Fatalf("unknown kid during the outage: %v, want key_lookup and not invalid", err)
		}
		if got := authReason(j, signKid(t, jwt.SigningMethodES256, k1, "k1")); got != "ok" {
			t.Fatalf("cached key during the outage: %s", got)
		}
		// Back up with the rotated set: the next unknown kid fetches it.
		srv.publish(t, map[string]any{"k2": &k2.PublicKey})
		srv.down.Store(false)
		tok := signKid(t, jwt.SigningMethodES256, k2, "k2")
		testutil.Eventually(t, 5*time.Second, "the new key verifies after the outage", func() bool {
			return authReason(j, tok) == "ok"
		})
	})
	t.Run("outage_at_start_is_key_lookup", func(t *testing.T) {
		srv := newJWKSServer(t, map[string]any{"k1": &k1.PublicKey})
		srv.down.Store(true)
		j := newJWKSVerifier(t, srv.URL, slow)
		if got := authReason(j, signKid(t, jwt.SigningMethodES256, k1, "k1")); got != "key_lookup" {
			t.Fatalf("before any successful fetch: %s, want key_lookup", got)
		}
	})
	t.Run("refresh_fetches_the_set_again", func(t *testing.T) {
		srv := newJWKSServer(t, map[string]any{"k1": &k1.PublicKey})
		newJWKSVerifier(t, srv.URL, auth.JWKSOptions{RefreshInterval: 10 * time.Millisecond})
		testutil.Eventually(t, 5*time.Second, "two refreshes", func() bool { return srv.fetches.Load() >= 3 })
	})
}

func TestJWKSKeepsTheAlgorithmProtections(t *testing.T) {
	srv := newJWKSServer(t, map[string]any{"r1": &rsaKey().PublicKey, "e1": &ecKey().PublicKey})
	all := newJWKSVerifier(t, srv.URL, auth.JWKSOptions{UnknownKeyInterval: time.Hour})
	esOnly := newJWKSVerifier(t, srv.URL, auth.JWKSOptions{UnknownKeyInterval: time.Hour}, "ES256")
	before := srv.fetches.Load()

	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		j     *auth.JWT
		token string
		want  string
	}{
		{"rs256_with_a_published_rsa_key_verifies", all, signKid(t, jwt.SigningMethodRS256, rsaKey(), "r1"), "ok"},
		{"hs256_signed_with_the_published_rsa_key_is_refused", all, signKid(t, jwt.SigningMethodHS256, rsaPEM(), "r1"), "invalid"},
		{"es256_naming_the_rsa_kid_is_refused", all, signKid(t, jwt.SigningMethodES256, ecKey(), "r1"), "invalid"},
		{"algorithm_outside_the_allowlist_is_refused", esOnly, signKid(t, jwt.SigningMethodRS256, rsaKey(), "r1"), "invalid"},
		{"alg_none_is_refused", all, none, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authReason(tt.j, tt.token); got != tt.want {
				t.Fatalf("Authenticate: %s, want %s", got, tt.want)
			}
		})
	}
	// A refused algorithm is refused before any key lookup: it never makes
	// the verifier fetch the set again.
	if n := srv.fetches.Load() - before; n > 1 {
		t.Fatalf("%d refetches, want at most the one of the mismatched kid", n)
	}
}

func TestJWKSOptions(t *testing.T) {
	tests := []struct {
		name string
		opts auth.JWTOptions
		want error
	}{
		{"plain_http_to_another_host_is_refused", auth.JWTOptions{JWKSURL: "http://id.example.com/jwks"}, auth.ErrInvalidOptions},
		{"relative_url_is_refused", auth.JWTOptions{JWKSURL: "/jwks"}, auth.ErrInvalidOptions},
		{"hmac_algorithm_is_refused", auth.JWTOptions{JWKSURL: "http://127.0.0.1:1/jwks", Algorithms: []string{"HS256"}}, auth.ErrInvalidOptions},
		{"negative_interval_is_refused", auth.JWTOptions{JWKSURL: "http://127.0.0.1:1/jwks", JWKS: auth.JWKSOptions{RefreshInterval: -time.Second}}, auth.ErrInvalidOptions},
		{"jwks_and_a_secret_together_are_refused", auth.JWTOptions{JWKSURL: "http://127.0.0.1:1/jwks", HMACSecret: secret}, auth.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := auth.NewJWT(tt.opts)
			if !errors.Is(err, tt.want) {
				if j != nil {
					j.Close()
				}
				t.Fatalf("NewJWT = %v, want %v", err, tt.want)
			}
		})
	}
}
