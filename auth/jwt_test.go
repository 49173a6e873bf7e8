package auth_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
)

var errJWKSDown = errors.New("jwks endpoint unreachable")

func hmacOpts() auth.JWTOptions { return auth.JWTOptions{HMACSecret: secret} }
func rsaOpts() auth.JWTOptions  { return auth.JWTOptions{PublicKey: &rsaKey().PublicKey} }

// hs256 signs claims with the test secret.
func hs256(c jwt.MapClaims) func(testing.TB) string {
	return func(tb testing.TB) string { return sign(tb, jwt.SigningMethodHS256, secret, c) }
}

// keys is a KeyFunc that returns ks whatever the token.
func keys(ks ...crypto.PublicKey) auth.KeyFunc {
	return func(context.Context, string, string) ([]crypto.PublicKey, error) { return ks, nil }
}

// withHeader signs valid claims with header name set to value.
func withHeader(name string, value any, m jwt.SigningMethod, key any) func(testing.TB) string {
	return func(tb testing.TB) string {
		tb.Helper()
		tok := jwt.NewWithClaims(m, claims())
		tok.Header[name] = value
		s, err := tok.SignedString(key)
		if err != nil {
			tb.Fatalf("signing: %v", err)
		}
		return s
	}
}

func TestJWT(t *testing.T) {
	exp := now.Add(time.Hour)
	tests := []struct {
		name   string
		opts   auth.JWTOptions
		token  func(testing.TB) string
		want   *auth.Identity // on success; nil when an error is expected
		errs   []error        // every one must match with errors.Is
		not    error          // must not match
		reason string         // auth.Reason of the error, when set
	}{
		// Happy paths, one per key family.
		{
			name:  "hs256_token_authenticates",
			opts:  hmacOpts(),
			token: hs256(claims()),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name:  "hs512_is_allowed_by_default_for_an_hmac_secret",
			opts:  hmacOpts(),
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodHS512, secret, claims()) },
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name:  "rs256_token_authenticates",
			opts:  rsaOpts(),
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, rsaKey(), claims()) },
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name:  "ps256_token_authenticates_with_an_rsa_key",
			opts:  rsaOpts(),
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodPS256, rsaKey(), claims()) },
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name:  "es256_token_authenticates",
			opts:  auth.JWTOptions{PublicKey: &ecKey().PublicKey},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodES256, ecKey(), claims()) },
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name:  "eddsa_token_authenticates",
			opts:  auth.JWTOptions{PublicKey: edKey().Public()},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodEdDSA, edKey(), claims()) },
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name: "keyfunc_key_is_used",
			opts: auth.JWTOptions{
				Algorithms: []string{"RS256"},
				KeyFunc:    keys(&rsaKey().PublicKey),
			},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, rsaKey(), claims()) },
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name: "keyfunc_key_set_keeps_only_keys_of_the_token_family",
			opts: auth.JWTOptions{
				Algorithms: []string{"ES256"},
				KeyFunc:    keys(&rsaKey().PublicKey, &ecKey().PublicKey),
			},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodES256, ecKey(), claims()) },
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},

		// Claims mapping.
		{
			name:  "roles_as_a_json_array",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"roles": []string{"admin", "support"}})),
			want:  &auth.Identity{UserID: "user-1", Roles: []string{"admin", "support"}, ExpiresAt: exp},
		},
		{
			name:  "roles_as_a_space_separated_string",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"roles": " admin  support "})),
			want:  &auth.Identity{UserID: "user-1", Roles: []string{"admin", "support"}, ExpiresAt: exp},
		},
		{
			name:  "tenant_from_the_default_claim",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"tenant_id": "acme"})),
			want:  &auth.Identity{UserID: "user-1", TenantID: "acme", ExpiresAt: exp},
		},
		{
			name:  "custom_tenant_and_roles_claims",
			opts:  auth.JWTOptions{HMACSecret: secret, TenantClaim: "org", RolesClaim: "scope"},
			token: hs256(claims(jwt.MapClaims{"org": "acme", "tenant_id": "other", "scope": "read write", "roles": "x"})),
			want:  &auth.Identity{UserID: "user-1", TenantID: "acme", Roles: []string{"read", "write"}, ExpiresAt: exp},
		},
		{
			name:  "null_tenant_and_roles_mean_none",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"tenant_id": nil, "roles": nil})),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name:  "matching_issuer_and_audience_are_accepted",
			opts:  auth.JWTOptions{HMACSecret: secret, Issuer: "https://id.example.com", Audience: "chat"},
			token: hs256(claims(jwt.MapClaims{"iss": "https://id.example.com", "aud": []string{"mail", "chat"}})),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name:  "expired_within_the_default_leeway_is_accepted",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"exp": now.Add(-5 * time.Second).Unix()})),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: now.Add(-5 * time.Second)},
		},
		{
			name:  "nbf_within_the_leeway_is_accepted",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"nbf": now.Add(5 * time.Second).Unix()})),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},

		// Algorithm attacks.
		{
			name: "alg_none_is_refused",
			opts: hmacOpts(),
			token: func(tb testing.TB) string {
				return sign(tb, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims())
			},
			errs: []error{auth.ErrInvalidToken},
		},
		{
			name:  "hs256_signed_with_the_rsa_public_key_pem_is_refused",
			opts:  rsaOpts(),
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodHS256, rsaPEM(), claims()) },
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name: "hs256_for_a_keyfunc_returning_an_rsa_key_is_refused",
			opts: auth.JWTOptions{
				Algorithms: []string{"HS256"},
				KeyFunc:    keys(&rsaKey().PublicKey),
			},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodHS256, rsaPEM(), claims()) },
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name: "keyfunc_returning_pem_bytes_for_an_rs256_allowlist_is_refused",
			opts: auth.JWTOptions{
				Algorithms: []string{"RS256"},
				KeyFunc:    keys(rsaPEM()),
			},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, rsaKey(), claims()) },
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "rs256_token_for_an_hmac_verifier_is_refused",
			opts:  hmacOpts(),
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, rsaKey(), claims()) },
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "algorithm_outside_the_allowlist_is_refused",
			opts:  auth.JWTOptions{HMACSecret: secret, Algorithms: []string{"HS256"}},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodHS512, secret, claims()) },
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "es384_token_for_a_p256_key_is_refused",
			opts:  auth.JWTOptions{PublicKey: &ecKey().PublicKey},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodES384, ec384(), claims()) },
			errs:  []error{auth.ErrInvalidToken},
		},

		// Critical header extensions: none is supported, so any "crit"
		// header makes the token unusable (RFC 7515, section 4.1.11).
		{
			name:  "crit_header_naming_an_extension_is_refused",
			opts:  hmacOpts(),
			token: withHeader("crit", []string{"exp"}, jwt.SigningMethodHS256, secret),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "crit_header_naming_an_unknown_extension_is_refused",
			opts:  rsaOpts(),
			token: withHeader("crit", []string{"http://example.com/ext"}, jwt.SigningMethodRS256, rsaKey()),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "empty_crit_header_is_refused",
			opts:  hmacOpts(),
			token: withHeader("crit", []string{}, jwt.SigningMethodHS256, secret),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "crit_header_of_the_wrong_type_is_refused",
			opts:  hmacOpts(),
			token: withHeader("crit", "exp", jwt.SigningMethodHS256, secret),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "other_unknown_header_is_ignored",
			opts:  hmacOpts(),
			token: withHeader("x-trace", "abc", jwt.SigningMethodHS256, secret),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: now.Add(time.Hour)},
		},

		// Signature and encoding.
		{
			name: "bad_signature_is_refused",
			opts: hmacOpts(),
			token: func(tb testing.TB) string {
				return sign(tb, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), claims())
			},
			errs: []error{auth.ErrInvalidToken, jwt.ErrTokenSignatureInvalid},
		},
		{
			name: "tampered_payload_is_refused",
			opts: hmacOpts(),
			token: func(tb testing.TB) string {
				good := strings.Split(sign(tb, jwt.SigningMethodHS256, secret, claims()), ".")
				evil := strings.Split(sign(tb, jwt.SigningMethodHS256, secret, claims(jwt.MapClaims{"sub": "admin"})), ".")
				return good[0] + "." + evil[1] + "." + good[2]
			},
			errs: []error{auth.ErrInvalidToken},
		},
		{
			name: "re_encoded_signature_is_refused",
			opts: hmacOpts(),
			token: func(tb testing.TB) string {
				return flipTrailingBits(sign(tb, jwt.SigningMethodHS256, secret, claims()))
			},
			errs: []error{auth.ErrInvalidToken, jwt.ErrTokenMalformed},
		},
		{
			name:  "garbage_is_refused",
			opts:  hmacOpts(),
			token: func(testing.TB) string { return "not-a-jwt" },
			errs:  []error{auth.ErrInvalidToken, jwt.ErrTokenMalformed},
		},

		// Time claims.
		{
			name:  "expired_token_is_reported_as_expired",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})),
			errs:  []error{auth.ErrTokenExpired},
			not:   auth.ErrInvalidToken,
		},
		{
			name:  "expired_beyond_a_custom_leeway_is_reported_as_expired",
			opts:  auth.JWTOptions{HMACSecret: secret, Leeway: time.Second},
			token: hs256(claims(jwt.MapClaims{"exp": now.Add(-5 * time.Second).Unix()})),
			errs:  []error{auth.ErrTokenExpired},
		},
		{
			name:  "expired_with_a_wrong_audience_is_invalid_not_expired",
			opts:  auth.JWTOptions{HMACSecret: secret, Audience: "chat"},
			token: hs256(claims(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "aud": "billing"})),
			errs:  []error{auth.ErrInvalidToken},
			not:   auth.ErrTokenExpired,
		},
		{
			name: "expired_with_a_bad_signature_is_invalid_not_expired",
			opts: hmacOpts(),
			token: func(tb testing.TB) string {
				return sign(tb, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)),
					claims(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}))
			},
			errs: []error{auth.ErrInvalidToken},
			not:  auth.ErrTokenExpired,
		},
		{
			name:  "nbf_in_the_future_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()})),
			errs:  []error{auth.ErrInvalidToken, jwt.ErrTokenNotValidYet},
		},
		{
			name:  "iat_in_the_future_beyond_the_leeway_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"iat": now.Add(time.Minute).Unix()})),
			errs:  []error{auth.ErrInvalidToken, jwt.ErrTokenUsedBeforeIssued},
		},
		{
			name:  "iat_in_the_future_within_the_leeway_is_accepted",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"iat": now.Add(5 * time.Second).Unix()})),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: now.Add(time.Hour)},
		},
		{
			name:  "iat_of_the_wrong_type_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"iat": "yesterday"})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "missing_iat_is_accepted",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"iat": nil})),
			want:  &auth.Identity{UserID: "user-1", ExpiresAt: now.Add(time.Hour)},
		},
		{
			name:  "missing_exp_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"exp": nil})),
			errs:  []error{auth.ErrInvalidToken, jwt.ErrTokenRequiredClaimMissing},
		},
		{
			name:  "exp_of_the_wrong_type_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"exp": "tomorrow"})),
			errs:  []error{auth.ErrInvalidToken},
		},

		// Issuer and audience.
		{
			name:  "wrong_audience_is_refused",
			opts:  auth.JWTOptions{HMACSecret: secret, Audience: "chat"},
			token: hs256(claims(jwt.MapClaims{"aud": "billing"})),
			errs:  []error{auth.ErrInvalidToken, jwt.ErrTokenInvalidAudience},
		},
		{
			name:  "missing_audience_is_refused_when_configured",
			opts:  auth.JWTOptions{HMACSecret: secret, Audience: "chat"},
			token: hs256(claims()),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "wrong_issuer_is_refused",
			opts:  auth.JWTOptions{HMACSecret: secret, Issuer: "https://id.example.com"},
			token: hs256(claims(jwt.MapClaims{"iss": "https://evil.example.net"})),
			errs:  []error{auth.ErrInvalidToken, jwt.ErrTokenInvalidIssuer},
		},
		{
			name:  "missing_issuer_is_refused_when_configured",
			opts:  auth.JWTOptions{HMACSecret: secret, Issuer: "https://id.example.com"},
			token: hs256(claims()),
			errs:  []error{auth.ErrInvalidToken},
		},

		// Subject, tenant and roles.
		{
			name:  "missing_sub_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"sub": nil})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "empty_sub_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"sub": ""})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "numeric_sub_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"sub": 42})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "sub_of_257_bytes_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"sub": strings.Repeat("u", 257)})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "sub_with_a_control_character_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"sub": "user-1\nlevel=ERROR"})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "tenant_of_the_wrong_type_is_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"tenant_id": 7})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "roles_with_a_non_string_element_are_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"roles": []any{"admin", 1}})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "roles_of_the_wrong_type_are_refused",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"roles": map[string]any{"admin": true}})),
			errs:  []error{auth.ErrInvalidToken},
		},

		// Subject pattern: look-alike ids refused on demand.
		{
			name:  "without_a_pattern_a_lookalike_sub_is_another_user",
			opts:  hmacOpts(),
			token: hs256(claims(jwt.MapClaims{"sub": "\u0430lice"})),
			want:  &auth.Identity{UserID: "\u0430lice", ExpiresAt: exp},
		},
		{
			name:  "sub_matching_the_pattern_is_accepted",
			opts:  auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompile(`[a-z0-9_-]{1,64}`)},
			token: hs256(claims(jwt.MapClaims{"sub": "alice"})),
			want:  &auth.Identity{UserID: "alice", ExpiresAt: exp},
		},
		{
			name:  "auth0_sub_matching_its_pattern_is_accepted",
			opts:  auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompile(`auth0\|[0-9a-f]{24}`)},
			token: hs256(claims(jwt.MapClaims{"sub": "auth0|507f1f77bcf86cd799439011"})),
			want:  &auth.Identity{UserID: "auth0|507f1f77bcf86cd799439011", ExpiresAt: exp},
		},
		{
			name:  "cyrillic_lookalike_sub_is_refused_by_the_pattern",
			opts:  auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompile(`[a-z0-9_-]{1,64}`)},
			token: hs256(claims(jwt.MapClaims{"sub": "\u0430lice"})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "trailing_space_is_refused_by_the_pattern",
			opts:  auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompile(`[a-z0-9_-]{1,64}`)},
			token: hs256(claims(jwt.MapClaims{"sub": "alice "})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "the_pattern_must_match_the_whole_sub",
			opts:  auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompile(`[a-z]+`)},
			token: hs256(claims(jwt.MapClaims{"sub": "admin|alice"})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "an_alternation_is_anchored_as_a_whole",
			opts:  auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompile(`a|b`)},
			token: hs256(claims(jwt.MapClaims{"sub": "ab"})),
			errs:  []error{auth.ErrInvalidToken},
		},
		{
			name:  "a_posix_pattern_is_anchored_too",
			opts:  auth.JWTOptions{HMACSecret: secret, SubjectPattern: regexp.MustCompilePOSIX(`[a-z]+`)},
			token: hs256(claims(jwt.MapClaims{"sub": "alice!"})),
			errs:  []error{auth.ErrInvalidToken},
		},

		// Size and presence.
		{
			name:  "one_megabyte_of_dots_is_too_large",
			opts:  hmacOpts(),
			token: func(testing.TB) string { return strings.Repeat(".", 1<<20) },
			errs:  []error{auth.ErrTokenTooLarge},
			not:   auth.ErrInvalidToken,
		},
		{
			name: "token_one_byte_over_a_custom_limit_is_too_large",
			opts: auth.JWTOptions{HMACSecret: secret, MaxTokenBytes: 100},
			token: func(tb testing.TB) string {
				return sign(tb, jwt.SigningMethodHS256, secret, claims(jwt.MapClaims{"sub": strings.Repeat("u", 200)}))
			},
			errs: []error{auth.ErrTokenTooLarge},
		},
		{
			name:  "empty_token_is_no_token",
			opts:  hmacOpts(),
			token: func(testing.TB) string { return "" },
			errs:  []error{auth.ErrNoToken},
		},

		// Key lookup failures.
		{
			name: "keyfunc_error_is_a_key_lookup_failure_kept_for_logs",
			opts: auth.JWTOptions{
				Algorithms: []string{"RS256"},
				KeyFunc:    func(context.Context, string, string) ([]crypto.PublicKey, error) { return nil, errJWKSDown },
			},
			token:  func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, rsaKey(), claims()) },
			errs:   []error{auth.ErrKeyLookup, errJWKSDown},
			reason: "key_lookup",
		},
		{
			name: "keyfunc_unknown_key_is_invalid",
			opts: auth.JWTOptions{
				Algorithms: []string{"RS256"},
				KeyFunc: func(context.Context, string, string) ([]crypto.PublicKey, error) {
					return nil, fmt.Errorf("kid k9: %w", auth.ErrUnknownKey)
				},
			},
			token:  func(tb testing.TB) string { return sign(tb, jwt.SigningMethodRS256, rsaKey(), claims()) },
			errs:   []error{auth.ErrInvalidToken},
			reason: "invalid",
		},
		{
			name: "keyfunc_gets_the_algorithm_and_kid",
			opts: auth.JWTOptions{
				Algorithms: []string{"ES256"},
				KeyFunc: func(_ context.Context, alg, kid string) ([]crypto.PublicKey, error) {
					if alg != "ES256" || kid != "k1" {
						return nil, fmt.Errorf("alg %q kid %q: %w", alg, kid, auth.ErrUnknownKey)
					}
					return []crypto.PublicKey{&ecKey().PublicKey}, nil
				},
			},
			token: func(tb testing.TB) string {
				tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims())
				tok.Header["kid"] = "k1"
				s, err := tok.SignedString(ecKey())
				if err != nil {
					tb.Fatal(err)
				}
				return s
			},
			want: &auth.Identity{UserID: "user-1", ExpiresAt: exp},
		},
		{
			name: "keyfunc_key_set_without_a_fitting_key_is_refused",
			opts: auth.JWTOptions{
				Algorithms: []string{"ES256"},
				KeyFunc:    keys(&rsaKey().PublicKey),
			},
			token: func(tb testing.TB) string { return sign(tb, jwt.SigningMethodES256, ecKey(), claims()) },
			errs:  []error{auth.ErrInvalidToken},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJWT(t, tt.opts)
			token := tt.token(t)
			id, err := j.Authenticate(context.Background(), token)
			assertNoTokenInError(t, err, token)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("Authenticate: unexpected error %v", err)
				}
				assertIdentity(t, id, *tt.want)
				return
			}
			if err == nil {
				t.Fatalf("Authenticate succeeded with %+v; want an error", id)
			}
			if tt.reason != "" && auth.Reason(err) != tt.reason {
				t.Errorf("Reason(%v) = %q, want %q", err, auth.Reason(err), tt.reason)
			}
			for _, want := range tt.errs {
				if !errors.Is(err, want) {
					t.Errorf("error %q does not wrap %q", err, want)
				}
			}
			if tt.not != nil && errors.Is(err, tt.not) {
				t.Errorf("error %q wraps %q; it must not", err, tt.not)
			}
			if !isZeroIdentity(id) {
				t.Errorf("identity %+v returned with an error; want the zero Identity", id)
			}
		})
	}
}

func assertIdentity(tb testing.TB, got, want auth.Identity) {
	tb.Helper()
	if got.UserID != want.UserID || got.TenantID != want.TenantID ||
		!slices.Equal(got.Roles, want.Roles) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		tb.Fatalf("identity = %+v, want %+v", got, want)
	}
}

func isZeroIdentity(id auth.Identity) bool {
	return id.UserID == "" && id.TenantID == "" && id.Roles == nil && id.ExpiresAt.IsZero()
}

// flipTrailingBits rewrites the last character of a token so that it decodes
// to the same bytes under lenient base64 but is not the canonical encoding.
func flipTrailingBits(token string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := token[len(token)-1]
	i := strings.IndexByte(alphabet, last)
	return token[:len(token)-1] + string(alphabet[i^1])
}

func TestJWTCancelledContextIsRefused(t *testing.T) {
	j := newJWT(t, hmacOpts())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := j.Authenticate(ctx, sign(t, jwt.SigningMethodHS256, secret, claims()))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestJWTOversizedTokenIsRefusedWithoutParsing(t *testing.T) {
	j := newJWT(t, hmacOpts())
	// JWT-shaped, so that a parser would base64-decode about 750 KB of it.
	huge := strings.Repeat("a", 1<<20) + ".e30.c2ln"
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := j.Authenticate(context.Background(), huge); !errors.Is(err, auth.ErrTokenTooLarge) {
			t.Fatalf("error = %v, want ErrTokenTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 4096 {
		t.Fatalf("refusing a 1 MB token allocated %d bytes per call; it must not be decoded", perRun)
	}
}

func TestJWTIsSafeForConcurrentUse(t *testing.T) {
	j := newJWT(t, hmacOpts())
	token := sign(t, jwt.SigningMethodHS256, secret, claims())
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 50 {
				if _, err = j.Authenticate(context.Background(), token); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
