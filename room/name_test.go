package room

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, room string
		kind, arg  string
		ok         bool
	}{
		{"bare_kind", "global", "global", "", true},
		{"user_room", "user:42", "user", "42", true},
		{"email_argument", "user:ana.b+x@example.com", "user", "ana.b+x@example.com", true},
		{"uuid_argument", "conversation:9f1c2e4a-0b7d-4c1e-9a55-3f2b6c1d8e70", "conversation", "9f1c2e4a-0b7d-4c1e-9a55-3f2b6c1d8e70", true},
		{"kind_with_digits_dash_underscore", "a1_b-c:x", "a1_b-c", "x", true},
		{"argument_with_tilde_and_underscore", "doc:a_b~c", "doc", "a_b~c", true},
		{"kind_of_32_bytes", strings.Repeat("k", 32), strings.Repeat("k", 32), "", true},
		{"argument_of_96_bytes", "t:" + strings.Repeat("a", 96), "t", strings.Repeat("a", 96), true},
		{"name_of_128_bytes", strings.Repeat("k", 31) + ":" + strings.Repeat("a", 96), strings.Repeat("k", 31), strings.Repeat("a", 96), true},

		{"empty_is_invalid", "", "", "", false},
		{"name_of_129_bytes_is_invalid", strings.Repeat("k", 32) + ":" + strings.Repeat("a", 96), "", "", false},
		{"kind_of_33_bytes_is_invalid", strings.Repeat("k", 33), "", "", false},
		{"argument_of_97_bytes_is_invalid", "t:" + strings.Repeat("a", 97), "", "", false},
		{"uppercase_kind_is_invalid", "User:42", "", "", false},
		{"kind_starting_with_digit_is_invalid", "1room", "", "", false},
		{"kind_starting_with_dash_is_invalid", "-room", "", "", false},
		{"empty_kind_is_invalid", ":42", "", "", false},
		{"empty_argument_is_invalid", "user:", "", "", false},
		{"second_colon_is_invalid", "user:42:x", "", "", false},
		{"space_is_invalid", "user:4 2", "", "", false},
		{"trailing_newline_is_invalid", "user:42\n", "", "", false},
		{"nul_byte_is_invalid", "user:42\x00", "", "", false},
		{"slash_is_invalid", "user:../42", "", "", false},
		{"wildcard_is_invalid", "user:*", "", "", false},
		{"non_ascii_lookalike_is_invalid", "user:42\u0430", "", "", false},
		{"invalid_utf8_is_invalid", "user:\xff", "", "", false},
		{"non_ascii_kind_is_invalid", "usér:42", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, arg, err := Parse(tc.room)
			if tc.ok {
				if err != nil || kind != tc.kind || arg != tc.arg {
					t.Fatalf("Parse(%q) = %q, %q, %v; want %q, %q, nil", tc.room, kind, arg, err, tc.kind, tc.arg)
				}
			} else if !errors.Is(err, ErrInvalidName) || kind != "" || arg != "" {
				t.Fatalf("Parse(%q) = %q, %q, %v; want an error wrapping ErrInvalidName", tc.room, kind, arg, err)
			}
			if Valid(tc.room) != tc.ok {
				t.Fatalf("Valid(%q) = %v, want %v", tc.room, !tc.ok, tc.ok)
			}
		})
	}
}

func TestNameBuilders(t *testing.T) {
	if got := User("42"); got != "user:42" {
		t.Errorf("User(42) = %q", got)
	}
	if got := Tenant("acme"); got != "tenant:acme" {
		t.Errorf("Tenant(acme) = %q", got)
	}
	if !Valid(Global) {
		t.Errorf("Global %q is not a valid name", Global)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"global", "user:42", "tenant:acme", "user:", ":x", "a:b:c", "user:\xff", strings.Repeat("k", 31) + ":" + strings.Repeat("a", 96)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, arg, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		if len(s) > maxNameLen {
			t.Fatalf("accepted %d-byte name", len(s))
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 0x21 || s[i] > 0x7e {
				t.Fatalf("accepted name %q with byte %#x", s, s[i])
			}
		}
		rebuilt := kind
		if arg != "" {
			rebuilt += ":" + arg
		}
		if rebuilt != s {
			t.Fatalf("Parse(%q) = %q, %q, which does not rebuild the name", s, kind, arg)
		}
		// Any accepted argument makes a user and a tenant room that parse
		// back to the same argument.
		if arg != "" {
			for _, b := range []struct {
				name, kind string
			}{{User(arg), "user"}, {Tenant(arg), "tenant"}} {
				k, a, err := Parse(b.name)
				if err != nil || k != b.kind || a != arg {
					t.Fatalf("Parse(%q) = %q, %q, %v; want %q, %q", b.name, k, a, err, b.kind, arg)
				}
			}
		}
		// And an id that makes a valid user room is returned unchanged.
		if k, a, err := Parse(User(s)); err == nil && (k != "user" || a != s) {
			t.Fatalf("User(%q) parses as %q, %q", s, k, a)
		}
		if k, a, err := Parse(Tenant(s)); err == nil && (k != "tenant" || a != s) {
			t.Fatalf("Tenant(%q) parses as %q, %q", s, k, a)
		}
	})
}
