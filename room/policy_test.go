package room

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/wsgate/wsgate/auth"
)

var errNotParticipant = errors.New("not a participant")

// participants is a custom rule: conversation:c1 has users 1 and 2.
var participants = AuthorizerFunc(func(_ context.Context, id auth.Identity, room string) error {
	if room == "conversation:c1" && (id.UserID == "1" || id.UserID == "2") {
		return nil
	}
	return errNotParticipant
})

func TestPolicy(t *testing.T) {
	alice := auth.Identity{UserID: "1", TenantID: "acme", Roles: []string{"member"}}
	admin := auth.Identity{UserID: "9", TenantID: "acme", Roles: []string{"admin"}}
	loner := auth.Identity{UserID: "3"}
	anonymous := auth.Identity{}

	full, err := NewPolicy(PolicyOptions{
		GlobalRole: "admin",
		Rules:      map[string]Authorizer{"conversation": participants},
	})
	if err != nil {
		t.Fatal(err)
	}
	zero, err := NewPolicy(PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	open, err := NewPolicy(PolicyOptions{Fallback: AuthorizerFunc(func(context.Context, auth.Identity, string) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		p         *Policy
		id        auth.Identity
		room      string
		allowed   bool
		invalid   bool  // error also wraps ErrInvalidName
		wantCause error // error also wraps this
	}{
		{"own_user_room_is_allowed", full, alice, "user:1", true, false, nil},
		{"user_room_of_someone_else_is_forbidden", full, alice, "user:2", false, false, nil},
		{"user_room_prefix_of_own_id_is_forbidden", full, admin, "user:99", false, false, nil},
		{"bare_user_kind_is_forbidden_even_without_user_id", full, anonymous, "user", false, false, nil},
		{"own_tenant_room_is_allowed", full, alice, "tenant:acme", true, false, nil},
		{"other_tenant_room_is_forbidden", full, alice, "tenant:globex", false, false, nil},
		{"tenant_room_without_tenant_is_forbidden", full, loner, "tenant:acme", false, false, nil},
		{"bare_tenant_kind_without_tenant_is_forbidden", full, loner, "tenant", false, false, nil},
		{"global_with_role_is_allowed", full, admin, "global", true, false, nil},
		{"global_without_role_is_forbidden", full, alice, "global", false, false, nil},
		{"global_with_argument_is_forbidden", full, admin, "global:x", false, false, nil},
		{"global_with_empty_role_configured_is_forbidden_to_all", zero, auth.Identity{UserID: "1", Roles: []string{""}}, "global", false, false, nil},
		{"custom_rule_allows_participant", full, alice, "conversation:c1", true, false, nil},
		{"custom_rule_denial_wraps_forbidden_and_cause", full, loner, "conversation:c1", false, false, errNotParticipant},
		{"kind_without_rule_is_forbidden_by_default", full, admin, "board:7", false, false, nil},
		{"fallback_decides_kinds_without_rule", open, alice, "board:7", true, false, nil},
		{"fallback_cannot_open_builtin_user_room", open, alice, "user:2", false, false, nil},
		{"fallback_cannot_open_global", open, alice, "global", false, false, nil},
		{"invalid_name_is_forbidden_and_invalid", full, admin, "user:1:2", false, true, nil},
		{"empty_name_is_forbidden_and_invalid", full, admin, "", false, true, nil},
		{"lookalike_name_is_forbidden_and_invalid", full, alice, "user:1\u200b", false, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.CanJoin(context.Background(), tc.id, tc.room)
			if tc.allowed {
				if err != nil {
					t.Fatalf("CanJoin(%q) = %v, want nil", tc.room, err)
				}
				return
			}
			if !errors.Is(err, ErrForbidden) {
				t.Fatalf("CanJoin(%q) = %v, want an error wrapping ErrForbidden", tc.room, err)
			}
			if errors.Is(err, ErrInvalidName) != tc.invalid {
				t.Fatalf("CanJoin(%q) = %v; wraps ErrInvalidName = %v, want %v", tc.room, err, !tc.invalid, tc.invalid)
			}
			if tc.wantCause != nil && !errors.Is(err, tc.wantCause) {
				t.Fatalf("CanJoin(%q) = %v, want it to wrap %v", tc.room, err, tc.wantCause)
			}
		})
	}
}

func TestNewPolicy(t *testing.T) {
	allow := AuthorizerFunc(func(context.Context, auth.Identity, string) error { return nil })
	tests := []struct {
		name string
		opts PolicyOptions
		ok   bool
	}{
		{"zero_options_are_valid", PolicyOptions{}, true},
		{"custom_kind_rule_is_valid", PolicyOptions{Rules: map[string]Authorizer{"conversation": allow}}, true},
		{"redefining_user_is_refused", PolicyOptions{Rules: map[string]Authorizer{"user": allow}}, false},
		{"redefining_tenant_is_refused", PolicyOptions{Rules: map[string]Authorizer{"tenant": allow}}, false},
		{"redefining_global_is_refused", PolicyOptions{Rules: map[string]Authorizer{"global": allow}}, false},
		{"invalid_kind_is_refused", PolicyOptions{Rules: map[string]Authorizer{"Chat": allow}}, false},
		{"nil_rule_is_refused", PolicyOptions{Rules: map[string]Authorizer{"chat": nil}}, false},
		{"nil_func_rule_is_refused", PolicyOptions{Rules: map[string]Authorizer{"chat": AuthorizerFunc(nil)}}, false},
		{"nil_func_fallback_is_refused", PolicyOptions{Fallback: AuthorizerFunc(nil)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy(tc.opts)
			if tc.ok != (err == nil) || tc.ok != (p != nil) {
				t.Fatalf("NewPolicy = %v, %v; want ok=%v", p, err, tc.ok)
			}
		})
	}
}

func TestPolicyCopiesRules(t *testing.T) {
	rules := map[string]Authorizer{}
	p, err := NewPolicy(PolicyOptions{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	rules["board"] = AuthorizerFunc(func(context.Context, auth.Identity, string) error { return nil })
	if err := p.CanJoin(context.Background(), auth.Identity{UserID: "1"}, "board:1"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a rule added to the options map after NewPolicy took effect: %v", err)
	}
}

func TestAutoRooms(t *testing.T) {
	tests := []struct {
		name string
		id   auth.Identity
		role string
		want []string
	}{
		{"user_only", auth.Identity{UserID: "1"}, "admin", []string{"user:1"}},
		{"user_and_tenant", auth.Identity{UserID: "1", TenantID: "acme"}, "admin", []string{"user:1", "tenant:acme"}},
		{"global_with_role", auth.Identity{UserID: "1", TenantID: "acme", Roles: []string{"admin"}}, "admin", []string{"user:1", "tenant:acme", "global"}},
		{"no_global_when_role_is_empty", auth.Identity{UserID: "1", Roles: []string{""}}, "", []string{"user:1"}},
		{"invalid_user_id_gets_no_user_room", auth.Identity{UserID: "auth0|1", TenantID: "acme"}, "", []string{"tenant:acme"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AutoRooms(tc.id, tc.role)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("AutoRooms = %q, want %q", got, tc.want)
			}
			// Every automatic room passes the policy for its own identity.
			p, err := NewPolicy(PolicyOptions{GlobalRole: tc.role})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				if err := p.CanJoin(context.Background(), tc.id, r); err != nil {
					t.Errorf("CanJoin(%q) = %v for an automatic room", r, err)
				}
			}
		})
	}
}
