package auth

import (
	"context"
	"slices"
	"time"
)

// Identity is who a connection acts for, as established by an Authenticator.
// It is a value: copy it freely; never modify Roles in place.
type Identity struct {
	// UserID identifies the user (the JWT "sub" claim). Never empty for an
	// authenticated connection.
	UserID string
	// TenantID is the user's tenant, empty when the deployment is single-tenant.
	TenantID string
	// Roles lists the user's roles, for room rules such as "global needs admin".
	Roles []string
	// ExpiresAt is when the credential stops being valid. The hub closes the
	// connection at this instant unless the client refreshed in-band. The zero
	// value means the credential does not expire.
	ExpiresAt time.Time
	// Extra is what the service keeps about the user beyond the fields
	// above, typically set by JWTOptions.Claims from its own claims (a
	// plan, an organisation, scopes). Store a value, or a pointer to data
	// never modified afterwards: identities are copied and read
	// concurrently. Read it with ExtraAs. Default nil.
	Extra any
}

// ExtraAs returns id.Extra as a T, and whether it holds one:
//
//	type Account struct{ Plan, Org string }
//	acct, ok := auth.ExtraAs[Account](ctx.Identity())
func ExtraAs[T any](id Identity) (T, bool) {
	v, ok := id.Extra.(T)
	return v, ok
}

// HasRole reports whether the identity carries role.
func (id Identity) HasRole(role string) bool {
	return role != "" && slices.Contains(id.Roles, role)
}

type identityKey struct{}

// NewContext returns a copy of ctx that carries id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity stored in ctx by NewContext, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
