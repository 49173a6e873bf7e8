package auth_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
)

// account is what a service keeps from its own claims.
type account struct{ Plan, Org string }

func TestClaimsHook(t *testing.T) {
	errNoPlan := errors.New("no plan claim")
	var calls atomic.Int32
	keepAccount := func(c map[string]any, id *auth.Identity) error {
		calls.Add(1)
		plan, _ := c["plan"].(string)
		if plan == "" {
			return errNoPlan
		}
		org, _ := c["org"].(string)
		id.Extra = account{Plan: plan, Org: org}
		return nil
	}
	tests := []struct {
		name      string
		hook      func(map[string]any, *auth.Identity) error
		claims    jwt.MapClaims
		want      *account // nil: refused as invalid
		wantCalls int32
	}{
		{"own_claims_reach_the_identity", keepAccount, jwt.MapClaims{"plan": "pro", "org": "acme"}, &account{"pro", "acme"}, 1},
		{"hook_error_refuses_the_token", keepAccount, jwt.MapClaims{"org": "acme"}, nil, 1},
		{"hook_does_not_run_for_an_expired_token", keepAccount, jwt.MapClaims{"plan": "pro", "exp": now.Add(-time.Hour).Unix()}, nil, 0},
		{"hook_does_not_run_for_a_bad_audience", keepAccount, jwt.MapClaims{"plan": "pro", "aud": "other"}, nil, 0},
		{"hook_may_not_change_the_user", func(_ map[string]any, id *auth.Identity) error {
			id.UserID = "admin"
			return nil
		}, nil, nil, 0},
		{"hook_may_not_extend_the_expiry", func(_ map[string]any, id *auth.Identity) error {
			id.ExpiresAt = id.ExpiresAt.Add(24 * time.Hour)
			return nil
		}, nil, nil, 0},
		{"hook_may_not_set_an_unusable_role", func(_ map[string]any, id *auth.Identity) error {
			id.Roles = append(id.Roles, "bad\nrole")
			return nil
		}, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			j := newJWT(t, auth.JWTOptions{HMACSecret: secret, Audience: "chat", Claims: tt.hook})
			c := claims(jwt.MapClaims{"aud": "chat"}, tt.claims)
			id, err := j.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, secret, c))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Authenticate = %+v, want a refusal", id)
				}
			} else {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				got, ok := auth.ExtraAs[account](id)
				if !ok || got != *tt.want || id.UserID != "user-1" {
					t.Fatalf("identity %+v, Extra as account = %+v, %v; want %+v", id, got, ok, *tt.want)
				}
			}
			if tt.wantCalls != 0 && calls.Load() != tt.wantCalls {
				t.Fatalf("hook ran %d times, want %d", calls.Load(), tt.wantCalls)
			}
			if tt.wantCalls == 0 && tt.claims != nil && calls.Load() != 0 {
				t.Fatalf("hook ran for a token that failed verification")
			}
		})
	}
}

func TestExtraAs(t *testing.T) {
	id := auth.Identity{UserID: "u", Extra: account{Plan: "free"}}
	if a, ok := auth.ExtraAs[account](id); !ok || a.Plan != "free" {
		t.Fatalf("ExtraAs[account] = %+v, %v", a, ok)
	}
	if _, ok := auth.ExtraAs[*account](id); ok {
		t.Fatal("ExtraAs of another type reported ok")
	}
	if _, ok := auth.ExtraAs[account](auth.Identity{}); ok {
		t.Fatal("ExtraAs of a nil Extra reported ok")
	}
}
