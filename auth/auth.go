package auth

import (
	"context"
	"errors"
)

// Authenticator turns a credential into an Identity. Implementations fail
// closed: any doubt about the token is an error, never a partial Identity.
// They must be safe for concurrent use, because the hub calls Authenticate
// from every handshake and from every in-band refresh.
type Authenticator interface {
	// Authenticate verifies token and returns who it stands for. A returned
	// error wraps ErrNoToken, ErrInvalidToken, ErrTokenExpired,
	// ErrTokenTooLarge or ErrKeyLookup, or is the context's error; its
	// message never contains the token.
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// AuthenticatorFunc adapts an ordinary function to the Authenticator
// interface, the way http.HandlerFunc adapts a function to http.Handler. It
// suits opaque-token introspection and test doubles.
type AuthenticatorFunc func(ctx context.Context, token string) (Identity, error)

// Authenticate calls f(ctx, token).
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (Identity, error) {
	return f(ctx, token)
}

// Errors returned while authenticating. Callers branch on them with errors.Is:
// the hub answers ErrTokenExpired with TOKEN_EXPIRED and everything else with
// UNAUTHORIZED (401 before the upgrade).
var (
	// ErrNoToken means the request or message carried no credential at all.
	ErrNoToken = errors.New("auth: no token")
	// ErrInvalidToken means a credential was present but is malformed, badly
	// signed, of a refused algorithm, or carries unacceptable claims.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrTokenExpired means the token was genuine and otherwise acceptable but
	// its exp lies in the past, beyond the leeway. Clients should obtain a new
	// token rather than retry with the same one.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrTokenTooLarge means the token exceeded the configured size limit and
	// was refused without being parsed.
	ErrTokenTooLarge = errors.New("auth: token too large")
	// ErrKeyLookup means the verification keys could not be obtained (a
	// JWKS endpoint is down or answers garbage), so the token could not be
	// checked at all. It is not ErrInvalidToken: an outage of the identity
	// provider must not look like a wave of forged tokens in logs and
	// metrics.
	ErrKeyLookup = errors.New("auth: verification keys unavailable")
	// ErrUnknownKey is what a KeyFunc returns (wrapped) when it has no key
	// for the token's kid and algorithm; the token is then invalid.
	ErrUnknownKey = errors.New("auth: no key for the token")
)

// Errors returned by constructors such as NewJWT. They signal a deployment
// mistake, so a service should refuse to start rather than run without
// authentication.
var (
	// ErrNoKey means no verification key was configured. There is no fallback
	// secret: an unset secret (for example an empty environment variable) is
	// this error.
	ErrNoKey = errors.New("auth: no verification key configured")
	// ErrInvalidOptions means the options are contradictory or unsafe: two key
	// sources, a weak key, a refused or mismatched algorithm, an excessive
	// leeway, a negative limit.
	ErrInvalidOptions = errors.New("auth: invalid options")
)

// Reason names an authentication error for logs and metric labels, from a
// fixed set: "no_token", "expired", "too_large", "key_lookup" or "invalid".
// It never includes the token.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrKeyLookup):
		return "key_lookup"
	case errors.Is(err, ErrNoToken):
		return "no_token"
	case errors.Is(err, ErrTokenExpired):
		return "expired"
	case errors.Is(err, ErrTokenTooLarge):
		return "too_large"
	default:
		return "invalid"
	}
}
