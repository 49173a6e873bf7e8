package adversarial

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
)

// TestJWTForgeries presents every kind of forged, stale or misdirected
// token, in the Authorization header and in a Sec-WebSocket-Protocol entry
// (what a browser sends); each is refused with 401 before the upgrade.
func TestJWTForgeries(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	hs := Start(t, Config{JWT: &auth.JWTOptions{HMACSecret: secret, Issuer: "https://id.example.com", Audience: "chat"}})
	rs := Start(t, Config{JWT: &auth.JWTOptions{PublicKey: &rsaKey.PublicKey}})
	good := jwt.MapClaims{"iss": "https://id.example.com", "aud": "chat"}
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	withHeader := func(name string, value any) func(t *testing.T) string {
		return func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix(),
				"iss": "https://id.example.com", "aud": "chat"})
			tok.Header[name] = value
			s, err := tok.SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	tests := []struct {
		name  string
		srv   *Server
		token func(t *testing.T) string
	}{
		{"alg_none", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
		}},
		{"alg_none_claiming_the_admin_role", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, with(jwt.MapClaims{"roles": []string{"admin"}}))
		}},
		{"hs256_signed_with_the_rsa_public_key", rs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, publicPEM, nil)
		}},
		{"hs256_signed_with_the_der_public_key", rs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, der, nil)
		}},
		{"rs256_token_for_an_hmac_server", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodRS256, rsaKey, good)
		}},
		{"wrong_secret", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), good)
		}},
		{"payload_swapped_under_a_genuine_signature", hs, func(t *testing.T) string {
			genuine := strings.Split(Sign(t, jwt.SigningMethodHS256, secret, good), ".")
			evil := strings.Split(Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"sub": "admin", "roles": "admin"})), ".")
			return genuine[0] + "." + evil[1] + "." + genuine[2]
		}},
		{"expired", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}))
		}},
		{"no_expiry", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"exp": nil}))
		}},
		{"not_valid_yet", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()}))
		}},
		{"issued_in_the_future", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"iat": time.Now().Add(time.Hour).Unix()}))
		}},
		{"wrong_audience", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"aud": "billing"}))
		}},
		{"wrong_issuer", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"iss": "https://evil.example.net"}))
		}},
		{"no_subject", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"sub": nil}))
		}},
		{"oversized", hs, func(t *testing.T) string {
			return Sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"pad": strings.Repeat("x", 10<<10)}))
		}},
		{"critical_header_extension", hs, withHeader("crit", []string{"exp"})},
		{"garbage", hs, func(*testing.T) string { return "not.a.jwt" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token(t)
			_, resp, err := tt.srv.Dial(t, Handshake{Token: tok})
			ExpectRefusal(t, resp, err, http.StatusUnauthorized, "UNAUTHORIZED")
			if len(tok) < 4<<10 { // a header line has room for the subprotocol form
				_, resp, err = tt.srv.Dial(t, Handshake{Subprotocols: []string{"wsgate.v1", "wsgate.bearer." + tok}})
				ExpectRefusal(t, resp, err, http.StatusUnauthorized, "UNAUTHORIZED")
			}
		})
	}
	t.Run("the_genuine_token_is_accepted", func(t *testing.T) {
		hs.Connect(t, Sign(t, jwt.SigningMethodHS256, secret, good))
		rs.Connect(t, Sign(t, jwt.SigningMethodRS256, rsaKey, nil))
	})
}
