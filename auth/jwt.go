package auth

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"regexp"
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

// JWTOptions configures NewJWT. Exactly one key source (HMACSecret,
// PublicKey, JWKSURL or KeyFunc) must be set; every other field has a safe
// default when zero.
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

	// JWKSURL is where the identity provider publishes its keys as a JSON
	// Web Key Set (its jwks_uri). The set is fetched by NewJWT, refreshed
	// and fetched again when a token names an unknown kid (a key rotation),
	// as JWKS says; Close stops the refresh. It must be https, or http to a
	// loopback host. A failed fetch is not fatal: tokens whose key is
	// already known still verify, the others are refused with
	// ErrKeyLookup until a fetch succeeds. HMAC ("oct") keys are never
	// used. Empty means unset.
	JWKSURL string
	// JWKS tunes the fetching of JWKSURL.
	JWKS JWKSOptions

	// KeyFunc looks the keys up per token, for key sources other than a
	// JWKS URL. Whatever keys it returns must still belong to the token's
	// algorithm family (the others are ignored), so a source that
	// publishes an RSA key cannot be used to check an HS256 token.
	// Algorithms is required with KeyFunc. Nil means unset.
	KeyFunc KeyFunc

	// Algorithms is the allowlist of "alg" header values. Default: derived
	// from the key — HS256, HS384, HS512 for HMACSecret; RS256, RS384, RS512,
	// PS256, PS384, PS512 for RSA; the single ES algorithm of the ECDSA
	// curve; EdDSA for Ed25519; with JWKSURL every RS, PS, ES and EdDSA
	// algorithm (each key still only verifies its own). Every entry must
	// match the key's family; "none" is always refused, and so is HS* with
	// JWKSURL. With KeyFunc there is no default, and symmetric (HS*) and
	// asymmetric algorithms may not be mixed.
	Algorithms []string

	// Issuer, when non-empty, must equal the token's "iss" claim, which then
	// becomes required. Default: not checked.
	Issuer string

	// Audience, when non-empty, must appear in the token's "aud" claim, which
	// then becomes required. Default: not checked.
	Audience string

	// Leeway tolerates clock skew when checking exp, nbf and iat. Default (zero):
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

	// Claims, when set, runs after every other check passed, with the
	// token's claims as decoded JSON (string, float64, bool, []any,
	// map[string]any, nil) and the Identity built from them. It keeps what
	// the service needs in id.Extra (a plan, an organisation, scopes) and
	// may adjust TenantID and Roles; it may not change UserID or
	// ExpiresAt. An error refuses the token as invalid. It must be safe
	// for concurrent use. Default: none.
	Claims func(claims map[string]any, id *Identity) error

	// SubjectPattern, when set, must match the whole sub claim (it is
	// anchored at both ends), or the token is invalid. It lets a deployment
	// refuse ids its identity provider should never issue, such as
	// look-alikes: "аlice" with a Cyrillic а, or "alice " with a trailing
	// space, are otherwise distinct, valid users. For example
	// regexp.MustCompile(`[a-z0-9_-]{1,64}`), or for Auth0 user ids
	// regexp.MustCompile(`auth0\|[0-9a-f]{24}`). Default nil: any non-empty
	// sub of at most MaxClaimBytes of UTF-8 without control characters.
	SubjectPattern *regexp.Regexp

	// Now is the clock used for exp, nbf and iat. Default: time.Now. Tests set it.
	Now func() time.Time
}

// KeyFunc looks up the keys that may verify a token. alg is the token's
// algorithm, already checked against the allowlist; kid is its "kid"
// header, "" when it has none. It returns the candidate keys: each a
// *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or, for HS
// algorithms, a []byte secret. An error wrapping ErrUnknownKey makes the
// token invalid; any other error means the keys could not be obtained,
// and Authenticate fails with ErrKeyLookup. ctx is Authenticate's.
type KeyFunc func(ctx context.Context, alg, kid string) ([]crypto.PublicKey, error)

// JWT is an Authenticator for JSON Web Tokens (RFC 7519). It requires a valid
// signature by an allowed algorithm of the configured key's family, an exp
// claim, a usable sub claim, and the configured iss and aud. It refuses a
// token whose header has a "crit" parameter (no critical extension is
// supported) and one whose iat lies in the future beyond the leeway. Create
// it with NewJWT; it is safe for concurrent use.
type JWT struct {
	parser      *jwt.Parser
	source      keySourceFunc
	jwks        *jwks // nil unless JWKSURL is set
	algs        []string
	maxBytes    int
	tenantClaim string
	rolesClaim  string
	claims      func(map[string]any, *Identity) error
	subject     *regexp.Regexp // SubjectPattern anchored at both ends; nil: any
}

// NewJWT validates opts and returns a JWT authenticator. It fails with an
// error wrapping ErrNoKey when no key source is set and ErrInvalidOptions for
// any other unsafe or contradictory setting; it never falls back to a default
// key. With JWKSURL it starts a goroutine that Close stops.
func NewJWT(opts JWTOptions) (*JWT, error) {
	source, algs, set, err := keySource(opts)
	if err != nil {
		return nil, err
	}
	j, err := newJWT(opts, source, algs)
	if err != nil {
		if set != nil {
			set.close()
		}
		return nil, err
	}
	j.jwks = set
	return j, nil
}

func newJWT(opts JWTOptions, source keySourceFunc, algs []string) (*JWT, error) {
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
		// An iat in the future (beyond the leeway) is a token minted by a
		// clock that cannot be trusted, or one forged to outlive a key
		// rotation; iat stays optional, as RFC 7519 has it.
		jwt.WithIssuedAt(),
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
		source:      source,
		algs:        algs,
		maxBytes:    maxBytes,
		tenantClaim: cmp.Or(opts.TenantClaim, defaultTenantClaim),
		rolesClaim:  cmp.Or(opts.RolesClaim, defaultRolesClaim),
		claims:      opts.Claims,
	}
	if opts.SubjectPattern != nil {
		// Anchored, so that "[a-z]+" cannot accept "alice\u00a0" by matching
		// a prefix. The full-match language is the same under Perl and
		// POSIX semantics, so recompiling a CompilePOSIX pattern is sound.
		anchored, err := regexp.Compile(`^(?:` + opts.SubjectPattern.String() + `)$`)
		if err != nil {
			return nil, fmt.Errorf("%w: SubjectPattern: %w", ErrInvalidOptions, err)
		}
		j.subject = anchored
	}
	return j, nil
}

// Close stops the refresh of JWKSURL; Authenticate then goes on with the
// keys already fetched. It does nothing for other key sources. Close is
// idempotent.
func (j *JWT) Close() error {
	if j.jwks != nil {
		j.jwks.close()
	}
	return nil
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
	keyfunc := func(t *jwt.Token) (any, error) {
		// Checked before any key is looked up: a token whose issuer marked
		// an extension as critical must not be accepted by a verifier that
		// ignores it (RFC 7515, section 4.1.11), and this one supports none.
		if _, ok := t.Header["crit"]; ok {
			return nil, errCritical
		}
		key, err := j.source(ctx, t)
		if err != nil {
			return nil, &keyLookupError{err: err}
		}
		return keyForMethod(t.Method, key)
	}
	if t, err := j.parser.ParseWithClaims(token, claims, keyfunc); err != nil {
		return Identity{}, j.classify(t, err)
	}
	id, err := j.identity(claims)
	if err != nil || j.claims == nil {
		return id, err
	}
	return j.runClaimsHook(claims, id)
}

// runClaimsHook hands the verified claims to JWTOptions.Claims and checks
// what it did to the identity: who and until when come from the token.
func (j *JWT) runClaimsHook(claims jwt.MapClaims, id Identity) (Identity, error) {
	user, exp := id.UserID, id.ExpiresAt
	id.Roles = slices.Clone(id.Roles) // the hook may edit its copy
	if err := j.claims(claims, &id); err != nil {
		return Identity{}, fmt.Errorf("%w: claims hook: %w", ErrInvalidToken, err)
	}
	switch {
	case id.UserID != user || !id.ExpiresAt.Equal(exp):
		return Identity{}, fmt.Errorf("%w: claims hook changed UserID or ExpiresAt", ErrInvalidToken)
	case id.TenantID != "" && !usableClaim(id.TenantID):
		return Identity{}, fmt.Errorf("%w: claims hook set an unusable TenantID", ErrInvalidToken)
	}
	for _, r := range id.Roles {
		if r == "" || !usableClaim(r) {
			return Identity{}, fmt.Errorf("%w: claims hook set an unusable role", ErrInvalidToken)
		}
	}
	return id, nil
}

// keyLookupError carries an error from the key source through jwt's error
// chain, so that a JWKS outage can be told apart from a forged token.
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
	// errCritical: the header has a "crit" parameter. Whatever it lists is
	// an extension this package does not implement, and an empty or
	// malformed list is invalid in itself.
	errCritical = errors.New("critical header extension not supported")
	// errSubjectPattern: a genuine token for an id the deployment refuses.
	errSubjectPattern = errors.New("sub does not match SubjectPattern")
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
	for _, reason := range []error{errKeyMismatch, errCritical} {
		if errors.Is(err, reason) {
			return fmt.Errorf("%w: %w", ErrInvalidToken, reason)
		}
	}
	if ke, ok := errors.AsType[*keyLookupError](err); ok {
		if errors.Is(ke, ErrKeyLookup) {
			return ke
		}
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
	if j.subject != nil && !j.subject.MatchString(sub) {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, errSubjectPattern)
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
