package room

import (
	"context"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/auth"
)

var (
	// ErrForbidden is wrapped by every error Policy.CanJoin returns: the
	// identity may not join the room.
	ErrForbidden = errors.New("room: forbidden")
	// ErrRoomLimit is returned by Index.Join when the member is already in
	// the maximum number of rooms.
	ErrRoomLimit = errors.New("room: too many rooms")
)

// Authorizer decides whether an identity may join a room. CanJoin returns
// nil to allow; any error denies. Implementations are called concurrently
// and should honour ctx, which carries the hub's handler deadline.
type Authorizer interface {
	CanJoin(ctx context.Context, id auth.Identity, room string) error
}

// AuthorizerFunc adapts a function to the Authorizer interface, the way
// http.HandlerFunc adapts a function to http.Handler.
type AuthorizerFunc func(ctx context.Context, id auth.Identity, room string) error

// CanJoin calls f(ctx, id, room).
func (f AuthorizerFunc) CanJoin(ctx context.Context, id auth.Identity, room string) error {
	return f(ctx, id, room)
}

// Built-in kinds, which PolicyOptions.Rules may not redefine: their rules are
// what S9 requires and a custom rule could only weaken them.
const (
	kindUser   = "user"
	kindTenant = "tenant"
)

// PolicyOptions configures NewPolicy. The zero value is the strictest policy:
// a connection may join only its own user room and its own tenant room.
type PolicyOptions struct {
	// GlobalRole is the role a connection needs to join Global. Default ""
	// means nobody may join it.
	GlobalRole string
	// Rules maps a room kind (the part before the colon) to the Authorizer
	// that decides joins of rooms of that kind, e.g. "conversation" to a
	// participant check. The kinds "user", "tenant" and "global" are built in
	// and may not appear here. Default: no rules.
	Rules map[string]Authorizer
	// Fallback decides joins of kinds that have no rule. Default nil denies
	// them.
	Fallback Authorizer
}

// Policy is the default-deny Authorizer described in the package
// documentation. It is immutable and safe for concurrent use.
type Policy struct {
	globalRole string
	rules      map[string]Authorizer // copied from the options: never written after NewPolicy
	fallback   Authorizer
}

// NewPolicy returns a Policy for opts. It returns an error, rather than a
// weaker policy, when a rule redefines a built-in kind, names an invalid
// kind, or is nil.
func NewPolicy(opts PolicyOptions) (*Policy, error) {
	p := &Policy{
		globalRole: opts.GlobalRole,
		rules:      make(map[string]Authorizer, len(opts.Rules)),
		fallback:   opts.Fallback,
	}
	if isNilAuthorizer(opts.Fallback) && opts.Fallback != nil {
		return nil, errors.New("room: Fallback is a nil AuthorizerFunc")
	}
	for kind, a := range opts.Rules {
		switch {
		case kind == kindUser || kind == kindTenant || kind == Global:
			return nil, fmt.Errorf("room: rule for built-in kind %q: built-in rules cannot be redefined", kind)
		case !validKind(kind):
			return nil, fmt.Errorf("room: rule for invalid kind %q: kinds match [a-z][a-z0-9_-]{0,31}", kind)
		case isNilAuthorizer(a):
			return nil, fmt.Errorf("room: rule for kind %q is nil", kind)
		}
		p.rules[kind] = a
	}
	return p, nil
}

// isNilAuthorizer catches both a nil interface and a nil function wrapped in
// one, which would otherwise panic on the first join.
func isNilAuthorizer(a Authorizer) bool {
	if a == nil {
		return true
	}
	f, ok := a.(AuthorizerFunc)
	return ok && f == nil
}

// CanJoin reports whether id may join room. Every error it returns wraps
// ErrForbidden; a malformed name also wraps ErrInvalidName, so a caller can
// tell a bad request from a denied one. An error from a custom rule or from
// Fallback is wrapped too, so it stays available for logs.
func (p *Policy) CanJoin(ctx context.Context, id auth.Identity, room string) error {
	kind, arg, err := Parse(room)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	switch kind {
	case kindUser:
		if arg == "" || arg != id.UserID {
			return fmt.Errorf("%w: user room of another user", ErrForbidden)
		}
		return nil
	case kindTenant:
		if arg == "" || arg != id.TenantID {
			return fmt.Errorf("%w: room of another tenant", ErrForbidden)
		}
		return nil
	case Global:
		if arg != "" || !id.HasRole(p.globalRole) {
			return fmt.Errorf("%w: global room needs role %q", ErrForbidden, p.globalRole)
		}
		return nil
	}
	a, ok := p.rules[kind]
	if !ok {
		a = p.fallback
	}
	if a == nil {
		return fmt.Errorf("%w: no rule for room kind %q", ErrForbidden, kind)
	}
	if err := a.CanJoin(ctx, id, room); err != nil {
		if errors.Is(err, ErrForbidden) {
			return err
		}
		return fmt.Errorf("%w: room %s: %w", ErrForbidden, room, err)
	}
	return nil
}

// AutoRooms returns the rooms a connection joins when it connects (R1): its
// user room, its tenant room when TenantID is set, and Global when it carries
// globalRole. A room whose name would be invalid, because the id contains
// bytes outside the argument alphabet, is left out rather than created under
// a name that Policy would refuse.
func AutoRooms(id auth.Identity, globalRole string) []string {
	rooms := make([]string, 0, 3)
	if validArg(id.UserID) {
		rooms = append(rooms, User(id.UserID))
	}
	if id.TenantID != "" && validArg(id.TenantID) {
		rooms = append(rooms, Tenant(id.TenantID))
	}
	if id.HasRole(globalRole) {
		rooms = append(rooms, Global)
	}
	return rooms
}
