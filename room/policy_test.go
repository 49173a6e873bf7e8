package room

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/auth"
)

var (
	errNotParticipant = errors.New("not a participant")
	errDatabaseDown   = errors.New("database down")
)

// participants is a custom rule: conversation:c1 has users 1 and 2, user 4
// is denied with a reason, and the directory of conversation:down is
// unreachable.
func participants(_ context.Context, id auth.Identity, room Name) (bool, error) {
	switch {
	case room.Kind != "conversation":
		return false, errors.New("rule called for another kind")
	case room.Arg == "down":
		return false, errDatabaseDown
	case id.UserID == "4":
		return false, fmt.Errorf("%w: %w", ErrForbidden, errNotParticipant)
	}
	return room.Arg == "c1" && (id.UserID == "1" || id.UserID == "2"), nil
}

func allow(context.Context, auth.Identity, Name) (bool, error) { return true, nil }

func TestPolicy(t *testing.T) {
	alice := auth.Identity{UserID: "1", TenantID: "acme", Roles: []string{"member"}}
	admin := auth.Identity{UserID: "9", TenantID: "acme", Roles: []string{"admin"}}
	loner := auth.Identity{UserID: "3"}
	anonymous := auth.Identity{}
	auth0 := auth.Identity{UserID: "auth0|507f1f77bcf86cd799439011", TenantID: "org/acme"}
	// percent's id is the escaped spelling of auth0's: it must not get
	// auth0's room.
	percent := auth.Identity{UserID: "auth0%7C507f1f77bcf86cd799439011"}

	full, err := NewPolicy(PolicyOptions{
		GlobalRole: "admin",
		Rules:      map[string]Rule{"conversation": participants},
	})
	if err != nil {
		t.Fatal(err)
	}
	zero, err := NewPolicy(PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	open, err := NewPolicy(PolicyOptions{Fallback: allow})
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
		failed    bool  // a failure, not a denial: no ErrForbidden
	}{
		{"own_user_room_is_allowed", full, alice, "user:1", true, false, nil, false},
		{"user_room_of_someone_else_is_forbidden", full, alice, "user:2", false, false, nil, false},
		{"user_room_prefix_of_own_id_is_forbidden", full, admin, "user:99", false, false, nil, false},
		{"bare_user_kind_is_forbidden_even_without_user_id", full, anonymous, "user", false, false, nil, false},
		{"own_tenant_room_is_allowed", full, alice, "tenant:acme", true, false, nil, false},
		{"other_tenant_room_is_forbidden", full, alice, "tenant:globex", false, false, nil, false},
		{"tenant_room_without_tenant_is_forbidden", full, loner, "tenant:acme", false, false, nil, false},
		{"bare_tenant_kind_without_tenant_is_forbidden", full, loner, "tenant", false, false, nil, false},
		{"global_with_role_is_allowed", full, admin, "global", true, false, nil, false},
		{"global_without_role_is_forbidden", full, alice, "global", false, false, nil, false},
		{"global_with_argument_is_forbidden", full, admin, "global:x", false, false, nil, false},
		{"global_with_empty_role_configured_is_forbidden_to_all", zero, auth.Identity{UserID: "1", Roles: []string{""}}, "global", false, false, nil, false},
		{"custom_rule_allows_participant", full, alice, "conversation:c1", true, false, nil, false},
		{"custom_rule_false_is_a_denial", full, loner, "conversation:c1", false, false, nil, false},
		{"custom_rule_denial_with_a_reason_keeps_it", full, auth.Identity{UserID: "4"}, "conversation:c1", false, false, errNotParticipant, false},
		{"custom_rule_failure_is_not_a_denial", full, alice, "conversation:down", false, false, errDatabaseDown, true},
		{"kind_without_rule_is_forbidden_by_default", full, admin, "board:7", false, false, nil, false},
		{"fallback_decides_kinds_without_rule", open, alice, "board:7", true, false, nil, false},
		{"fallback_cannot_open_builtin_user_room", open, alice, "user:2", false, false, nil, false},
		{"fallback_cannot_open_global", open, alice, "global", false, false, nil, false},
		{"invalid_name_is_forbidden_and_invalid", full, admin, "user:1:2", false, true, nil, false},
		{"empty_name_is_forbidden_and_invalid", full, admin, "", false, true, nil, false},
		{"lookalike_name_is_forbidden_and_invalid", full, alice, "user:1\u200b", false, true, nil, false},
		{"own_escaped_user_room_is_allowed", full, auth0, "user:auth0%7C507f1f77bcf86cd799439011", true, false, nil, false},
		{"own_escaped_tenant_room_is_allowed", full, auth0, "tenant:org%2Facme", true, false, nil, false},
		{"unescaped_own_id_is_forbidden_and_invalid", full, auth0, "user:auth0|507f1f77bcf86cd799439011", false, true, nil, false},
		{"escaped_room_of_another_user_is_forbidden", full, auth0, "user:auth0%7C507f1f77bcf86cd799439012", false, false, nil, false},
		{"id_spelling_an_escape_gets_only_its_own_room", full, percent, "user:auth0%7C507f1f77bcf86cd799439011", false, false, nil, false},
		{"id_spelling_an_escape_joins_its_own_room", full, percent, "user:auth0%257C507f1f77bcf86cd799439011", true, false, nil, false},
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
			if err == nil {
				t.Fatalf("CanJoin(%q) = nil, want a refusal", tc.room)
			}
			if errors.Is(err, ErrForbidden) == tc.failed {
				t.Fatalf("CanJoin(%q) = %v; wraps ErrForbidden = %v, want %v", tc.room, err, !tc.failed, !tc.failed)
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
	tests := []struct {
		name string
		opts PolicyOptions
		ok   bool
	}{
		{"zero_options_are_valid", PolicyOptions{}, true},
		{"custom_kind_rule_is_valid", PolicyOptions{Rules: map[string]Rule{"conversation": allow}}, true},
		{"redefining_user_is_refused", PolicyOptions{Rules: map[string]Rule{"user": allow}}, false},
		{"redefining_tenant_is_refused", PolicyOptions{Rules: map[string]Rule{"tenant": allow}}, false},
		{"redefining_global_is_refused", PolicyOptions{Rules: map[string]Rule{"global": allow}}, false},
		{"invalid_kind_is_refused", PolicyOptions{Rules: map[string]Rule{"Chat": allow}}, false},
		{"nil_rule_is_refused", PolicyOptions{Rules: map[string]Rule{"chat": nil}}, false},
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
	rules := map[string]Rule{}
	p, err := NewPolicy(PolicyOptions{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	rules["board"] = allow
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
		{"auth0_user_id_gets_its_escaped_user_room", auth.Identity{UserID: "auth0|1", TenantID: "acme"}, "", []string{"user:auth0%7C1", "tenant:acme"}},
		{"ids_with_colon_slash_space_and_non_ascii_get_rooms", auth.Identity{UserID: "a:b/c d", TenantID: "société"}, "", []string{"user:a%3Ab%2Fc%20d", "tenant:soci%C3%A9t%C3%A9"}},
		{"id_over_256_bytes_gets_no_user_room", auth.Identity{UserID: strings.Repeat("u", 257), TenantID: "acme"}, "", []string{"tenant:acme"}},
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
