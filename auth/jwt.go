package auth

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Limits applied by NewJWT. They are constants rather than options where a
// larger value would only ever weaken verification.
const (
	// MinHMACSecretBytes is the shortest HMAC secret NewJWT accepts: 256 bits,
	// the strength HS256 is designed for (RFC 7518, section 3.2).
	MinHMACSecretBytes = 32
	// MinRSAKeyBits is the smallest RSA modulus accepted for verification.
	MinRSAKeyBits = 2048
	// MaxLeeway is the largest clock-skew allowance NewJWT accepts. Beyond a
	// few minutes leeway stops covering skew and starts extending lifetimes.
	MaxLeeway = 5 * time.Minute
	// MaxClaimBytes bounds sub, the tenant and each role. They end up in room
	// names, logs and metrics labels, so they must stay small.
	MaxClaimBytes = 256

	defaultLeeway        = 10 * time.Second
	defaultMaxTokenBytes = 8192
	defaultTenantClaim   = "tenant_id"
	defaultRolesClaim    = "roles"
)

// JWTOptions configures NewJWT. Exactly one key source (HMACSecret, PublicKey
// or Keyfunc) must be set; every other field has a safe default when zero.
type JWTOptions struct {
	// HMACSecret verifies HS256/HS384/HS512 tokens. It must be at least
	// MinHMACSecretBytes long. Empty means unset. NewJWT copies it, so later
	// changes to the slice have no effect.
	HMACSecret []byte

	// PublicKey verifies asymmetric tokens: *rsa.PublicKey (RS* and PS*, at
	// least MinRSAKeyBits), *ecdsa.PublicKey (P-256, P-384 or P-521, for the
	// matching ES256/ES384/ES512) or ed25519.PublicKey (EdDSA). Private keys
	// are refused: a verifier has no business holding one. Nil means unset.
	PublicKey crypto.PublicKey

	// Keyfunc looks the key up per token, typically from a JWKS endpoint via
	// github.com/MicahParks/keyfunc/v3 (its Keyfunc method fits). Whatever key
	// it returns must still belong to the token's algorithm family, so a JWKS
	// that publishes an RSA key cannot be used to check an HS256 token.
	// Algorithms is required with Keyfunc. Nil means unset.
	Keyfunc jwt.Keyfunc

	// Algorithms is the allowlist of "alg" header values. Default: derived
	// from the key — HS256, HS384, HS512 for HMACSecret; RS256, RS384, RS512,
	// PS256, PS384, PS512 for RSA; the single ES algorithm of the ECDSA
	// curve; EdDSA for Ed25519. Every entry must match the key's family;
	// "none" is always refused. With Keyfunc there is no default, and
	// symmetric (HS*) and asymmetric algorithms may not be mixed.
	Algorithms []string

	// Issuer, when non-empty, must equal the token's "iss" claim, which then
	// becomes required. Default: not checked.
	Issuer string

	// Audience, when non-empty, must appear in the token's "aud" claim, which
	// then becomes required. Default: not checked.
	Audience string

	// Leeway tolerates clock skew when checking exp and nbf. Default (zero):
	// 10 seconds. Negative values and values above MaxLeeway are refused.
	Leeway time.Duration

	// MaxTokenBytes refuses longer tokens with ErrTokenTooLarge before any
	// decoding, so oversized input costs nothing. Default (zero): 8192.
	MaxTokenBytes int

	// TenantClaim names the claim holding the tenant ID. Default: "tenant_id".
	// A token without it authenticates with an empty TenantID.
	TenantClaim string

	// RolesClaim names the claim holding the roles, either a JSON array of
	// strings or one space-separated string (the OAuth "scope" style).
	// Default: "roles". A token without it authenticates with no roles.
	RolesClaim string

	// Now is the clock used for exp and nbf. Default: time.Now. Tests set it.
	Now func() time.Time
}

// JWT is an Authenticator for JSON Web Tokens (RFC 7519). It requires a valid
// signature by an allowed algorithm of the configured key's family, an exp
// claim, a usable sub claim, and the configured iss and aud. Create it with
// NewJWT; it is safe for concurrent use.
type JWT struct {
	parser      *jwt.Parser
	keyfunc     jwt.Keyfunc
	algs        []string
	maxBytes    int
	tenantClaim string
	rolesClaim  string
}

// NewJWT validates opts and returns a JWT authenticator. It fails with an
// error wrapping ErrNoKey when no key source is set and ErrInvalidOptions for
// any other unsafe or contradictory setting; it never falls back to a default
// key.
func NewJWT(opts JWTOptions) (*JWT, error) {
	source, algs, err := keySource(opts)
	if err != nil {
		return nil, err
	}
	leeway := opts.Leeway
	switch {
	case leeway < 0 || leeway > MaxLeeway:
		return nil, fmt.Errorf("%w: Leeway %v outside [0, %v]", ErrInvalidOptions, leeway, MaxLeeway)
	case leeway == 0:
		leeway = defaultLeeway
	}
	maxBytes := opts.MaxTokenBytes
	switch {
	case maxBytes < 0:
		return nil, fmt.Errorf("%w: MaxTokenBytes is negative", ErrInvalidOptions)
	case maxBytes == 0:
		maxBytes = defaultMaxTokenBytes
	}

	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		// Canonical base64 only: one token string per signature, so a
		// verified token cannot be re-encoded into a "different" valid one.
		jwt.WithStrictDecoding(),
	}
	if opts.Now != nil {
		popts = append(popts, jwt.WithTimeFunc(opts.Now))
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}

	j := &JWT{
		parser:      jwt.NewParser(popts...),
		algs:        algs,
		maxBytes:    maxBytes,
		tenantClaim: cmp.Or(opts.TenantClaim, defaultTenantClaim),
		rolesClaim:  cmp.Or(opts.RolesClaim, defaultRolesClaim),
	}
	j.keyfunc = func(t *jwt.Token) (any, error) {
		key, err := source(t)
		if err != nil {
			return nil, &keyLookupError{err: err}
		}
		return keyForMethod(t.Method, key)
	}
	return j, nil
}

// Authenticate verifies token and maps its claims to an Identity. See
// Authenticator for the error contract.
func (j *JWT) Authenticate(ctx context.Context, token string) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, fmt.Errorf("auth: %w", err)
	}
	if token == "" {
		return Identity{}, ErrNoToken
	}
	// Checked before anything touches the token, so that a megabyte of
	// garbage is refused in constant time.
	if len(token) > j.maxBytes {
		return Identity{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTokenTooLarge, len(token), j.maxBytes)
	}
	claims := jwt.MapClaims{}
	if t, err := j.parser.ParseWithClaims(token, claims, j.keyfunc); err != nil {
		return Identity{}, j.classify(t, err)
	}
	return j.identity(claims)
}

// keyLookupError carries an error from the user's Keyfunc through jwt's error
// chain, so that a JWKS outage can be told apart from a forged token in logs.
type keyLookupError struct{ err error }

func (e *keyLookupError) Error() string { return "key lookup: " + e.err.Error() }
func (e *keyLookupError) Unwrap() error { return e.err }

// Reasons for ErrInvalidToken found by this package rather than by jwt.
var (
	// errAlgNotAllowed: the header names an algorithm outside the allowlist,
	// "none" included. Worth telling apart in logs: it is either an attack
	// or an identity provider that changed its signing algorithm.
	errAlgNotAllowed = errors.New("algorithm not allowed")
	// errKeyMismatch: the token's algorithm does not fit the key, so the
	// signature of an alg-confusion attempt is never even checked.
	errKeyMismatch = errors.New("algorithm does not match the key")
)

// claimReasons are the jwt errors that make a token invalid rather than
// expired. They are tested before jwt.ErrTokenExpired so that a token that is
// both expired and, say, for another audience is reported as invalid: asking
// the client to refresh would not help.
var claimReasons = []error{
	jwt.ErrTokenMalformed,
	jwt.ErrTokenUnverifiable,
	jwt.ErrTokenSignatureInvalid,
	jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrTokenInvalidAudience,
	jwt.ErrTokenInvalidIssuer,
	jwt.ErrTokenNotValidYet,
	jwt.ErrTokenUsedBeforeIssued,
	jwt.ErrInvalidType,
}

// classify maps a jwt error for token t (possibly nil) to this package's
// sentinels. Only fixed sentinel texts are kept, never jwt's detailed
// messages, because those can quote decoded token content.
func (j *JWT) classify(t *jwt.Token, err error) error {
	if t != nil && t.Method != nil && !slices.Contains(j.algs, t.Method.Alg()) {
		return fmt.Errorf("%w: %w", ErrInvalidToken, errAlgNotAllowed)
	}
	if errors.Is(err, errKeyMismatch) {
		return fmt.Errorf("%w: %w", ErrInvalidToken, errKeyMismatch)
	}
	if ke, ok := errors.AsType[*keyLookupError](err); ok {
		return fmt.Errorf("%w: %w", ErrInvalidToken, ke)
	}
	for _, reason := range claimReasons {
		if errors.Is(err, reason) {
			return fmt.Errorf("%w: %w", ErrInvalidToken, reason)
		}
	}
	if errors.Is(err, jwt.ErrTokenExpired) {
		return ErrTokenExpired
	}
	return ErrInvalidToken
}

// identity maps verified claims to an Identity. Claim values that are present
// but unusable make the whole token invalid: the issuer signed something this
// deployment does not understand, and guessing would fail open.
func (j *JWT) identity(c jwt.MapClaims) (Identity, error) {
	sub, ok := c["sub"].(string)
	if !ok || sub == "" {
		return Identity{}, fmt.Errorf("%w: missing sub", ErrInvalidToken)
	}
	if !usableClaim(sub) {
		return Identity{}, fmt.Errorf("%w: unusable sub", ErrInvalidToken)
	}
	id := Identity{UserID: sub}

	if v := c[j.tenantClaim]; v != nil {
		tenant, ok := v.(string)
		if !ok || !usableClaim(tenant) {
			return Identity{}, fmt.Errorf("%w: unusable claim %q", ErrInvalidToken, j.tenantClaim)
		}
		id.TenantID = tenant
	}

	roles, err := parseRoles(c[j.rolesClaim])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: claim %q: %w", ErrInvalidToken, j.rolesClaim, err)
	}
	id.Roles = roles

	exp, err := c.GetExpirationTime()
	if err != nil || exp == nil {
		// Unreachable while the parser requires exp; kept so that a change
		// of parser options cannot yield a never-expiring identity.
		return Identity{}, fmt.Errorf("%w: missing exp", ErrInvalidToken)
	}
	id.ExpiresAt = exp.UTC()
	return id, nil
}

var errBadRoles = errors.New("roles must be an array of strings or a space-separated string")

// parseRoles accepts a JSON array of strings or a space-separated string; a
// missing or null claim means no roles.
func parseRoles(v any) ([]string, error) {
	var roles []string
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		roles = strings.Fields(v)
	case []any:
		roles = make([]string, 0, len(v))
		for _, r := range v {
			s, ok := r.(string)
			if !ok {
				return nil, errBadRoles
			}
			roles = append(roles, s)
		}
	default:
		return nil, errBadRoles
	}
	for _, r := range roles {
		if r == "" || !usableClaim(r) {
			return nil, errBadRoles
		}
	}
	if len(roles) == 0 {
		return nil, nil
	}
	return slices.Clip(roles), nil
}

// usableClaim reports whether s can safely become a room-name component, a
// log attribute and a map key: bounded, valid UTF-8, no control characters.
func usableClaim(s string) bool {
	if len(s) > MaxClaimBytes || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}
