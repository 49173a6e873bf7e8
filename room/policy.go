package room

import (
	"context"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/auth"
)

var (
	// ErrForbidden is wrapped by the error of a denied join: the identity
	// may not join the room. An Authorizer that could not decide (its
	// database is down) returns an error that does not wrap it, and the hub
	// answers INTERNAL rather than FORBIDDEN.
	ErrForbidden = errors.New("room: forbidden")
	// ErrRoomLimit is returned by Index.Join when the member is already in
	// the maximum number of rooms.
	ErrRoomLimit = errors.New("room: too many rooms")
)

// Authorizer decides whether an identity may join a room. CanJoin returns
// nil to allow, an error wrapping ErrForbidden to deny, and any other error
// when it could not decide: the hub then answers INTERNAL and logs the
// cause. Implementations are called concurrently and should honour ctx,
// which carries the hub's handler deadline. Policy is the Authorizer most
// services need: it parses the name once and hands it to a Rule.
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

// Name is a parsed, valid room name: "conversation:9f1c" is
// Name{Kind: "conversation", Arg: "9f1c"}, "global" is Name{Kind: "global"}.
type Name struct {
	Kind string
	Arg  string // empty when the name has no argument
}

// String returns the room name: Kind, or Kind + ":" + Arg.
func (n Name) String() string {
	if n.Arg == "" {
		return n.Kind
	}
	return n.Kind + ":" + n.Arg
}

// Rule decides the joins of one room kind, given the room's name already
// parsed and validated. It returns true to allow and false to deny. An
// error means it could not decide (a lookup failed): the join is refused
// and the error reaches the hub's log, not the client, which gets INTERNAL.
// A rule may also deny with an error wrapping ErrForbidden to put its
// reason in the log. Rules are called concurrently and should honour ctx,
// which carries the hub's handler deadline.
type Rule func(ctx context.Context, id auth.Identity, room Name) (bool, error)

// Built-in kinds, which PolicyOptions.Rules may not redefine: a custom rule
// could only weaken them.
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
	// Rules maps a room kind (the part before the colon) to the Rule that
	// decides joins of rooms of that kind, e.g. "conversation" to a
	// participant check. The kinds "user", "tenant" and "global" are built in
	// and may not appear here. Default: no rules.
	Rules map[string]Rule
	// Fallback decides joins of kinds that have no rule. Default nil denies
	// them.
	Fallback Rule
}

// Policy is the default-deny Authorizer described in the package
// documentation. It is immutable and safe for concurrent use.
type Policy struct {
	globalRole string
	rules      map[string]Rule // copied from the options: never written after NewPolicy
	fallback   Rule
}

// NewPolicy returns a Policy for opts. It returns an error, rather than a
// weaker policy, when a rule redefines a built-in kind, names an invalid
// kind, or is nil.
func NewPolicy(opts PolicyOptions) (*Policy, error) {
	p := &Policy{
		globalRole: opts.GlobalRole,
		rules:      make(map[string]Rule, len(opts.Rules)),
		fallback:   opts.Fallback,
	}
	for kind, r := range opts.Rules {
		switch {
		case kind == kindUser || kind == kindTenant || kind == Global:
			return nil, fmt.Errorf("room: rule for built-in kind %q: built-in rules cannot be redefined", kind)
		case !validKind(kind):
			return nil, fmt.Errorf("room: rule for invalid kind %q: kinds match [a-z][a-z0-9_-]{0,31}", kind)
		case r == nil:
			return nil, fmt.Errorf("room: rule for kind %q is nil", kind)
		}
		p.rules[kind] = r
	}
	return p, nil
}

// CanJoin reports whether id may join room. A denial wraps ErrForbidden; a
// malformed name wraps ErrForbidden and ErrInvalidName, so a caller can
// tell a bad request from a denied one. When a Rule fails, CanJoin returns
// its error wrapped, without ErrForbidden: the join is refused, and the
// caller tells the client it failed rather than that it was denied.
func (p *Policy) CanJoin(ctx context.Context, id auth.Identity, room string) error {
	kind, arg, err := Parse(room)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	switch kind {
	case kindUser:
		if arg == "" || arg != Escape(id.UserID) {
			return fmt.Errorf("%w: user room of another user", ErrForbidden)
		}
		return nil
	case kindTenant:
		if arg == "" || arg != Escape(id.TenantID) {
			return fmt.Errorf("%w: room of another tenant", ErrForbidden)
		}
		return nil
	case Global:
		if arg != "" || !id.HasRole(p.globalRole) {
			return fmt.Errorf("%w: global room needs role %q", ErrForbidden, p.globalRole)
		}
		return nil
	}
	rule, ok := p.rules[kind]
	if !ok {
		rule = p.fallback
	}
	if rule == nil {
		return fmt.Errorf("%w: no rule for room kind %q", ErrForbidden, kind)
	}
	allowed, err := rule(ctx, id, Name{Kind: kind, Arg: arg})
	switch {
	case errors.Is(err, ErrForbidden):
		return err
	case err != nil:
		return fmt.Errorf("room: rule for %s: %w", room, err)
	case !allowed:
		return fmt.Errorf("%w: room %s", ErrForbidden, room)
	}
	return nil
}

// AutoRooms returns the rooms a connection joins when it connects: its user
// room (User), its tenant room (Tenant) when TenantID is set, and Global
// when it carries globalRole. Ids are escaped as User and Tenant do, so an
// id like "auth0|507f1f77bcf86cd799439011" gets its room; only an id longer
// than 256 bytes, which auth.JWT never accepts, is left out rather than
// given a name that Policy would refuse.
func AutoRooms(id auth.Identity, globalRole string) []string {
	rooms := make([]string, 0, 3)
	if u := User(id.UserID); Valid(u) {
		rooms = append(rooms, u)
	}
	if t := Tenant(id.TenantID); id.TenantID != "" && Valid(t) {
		rooms = append(rooms, t)
	}
	if id.HasRole(globalRole) {
		rooms = append(rooms, Global)
	}
	return rooms
}
