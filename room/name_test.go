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
		{"plain_argument_of_256_bytes", "t:" + strings.Repeat("a", 256), "t", strings.Repeat("a", 256), true},
		{"escaped_argument_of_256_bytes", "t:" + strings.Repeat("%C3", 256), "t", strings.Repeat("%C3", 256), true},
		{"longest_name", strings.Repeat("k", 32) + ":" + strings.Repeat("%7C", 256), strings.Repeat("k", 32), strings.Repeat("%7C", 256), true},
		{"escaped_auth0_id", "user:auth0%7C507f1f77bcf86cd799439011", "user", "auth0%7C507f1f77bcf86cd799439011", true},
		{"escaped_colon_slash_and_space", "user:a%3Ab%2Fc%20d", "user", "a%3Ab%2Fc%20d", true},
		{"escaped_non_ascii", "user:jos%C3%A9", "user", "jos%C3%A9", true},
		{"escaped_percent", "user:50%25", "user", "50%25", true},

		{"empty_is_invalid", "", "", "", false},
		{"kind_of_33_bytes_is_invalid", strings.Repeat("k", 33), "", "", false},
		{"plain_argument_of_257_bytes_is_invalid", "t:" + strings.Repeat("a", 257), "", "", false},
		{"escaped_argument_of_257_bytes_is_invalid", "t:a" + strings.Repeat("%C3", 256), "", "", false},
		{"lower_case_escape_is_invalid", "user:auth0%7c1", "", "", false},
		{"escaped_plain_byte_is_invalid", "user:%61lice", "", "", false},
		{"truncated_escape_is_invalid", "user:a%7", "", "", false},
		{"lone_percent_is_invalid", "user:%", "", "", false},
		{"escape_with_a_non_hex_digit_is_invalid", "user:a%7G", "", "", false},
		{"raw_pipe_is_invalid", "user:auth0|1", "", "", false},
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

func TestEscape(t *testing.T) {
	tests := []struct {
		name, id, want string
	}{
		{"plain_id_is_unchanged", "alice", "alice"},
		{"email_is_unchanged", "ana.b+x@example.com", "ana.b+x@example.com"},
		{"uuid_is_unchanged", "9f1c2e4a-0b7d-4c1e-9a55-3f2b6c1d8e70", "9f1c2e4a-0b7d-4c1e-9a55-3f2b6c1d8e70"},
		{"auth0_pipe", "auth0|507f1f77bcf86cd799439011", "auth0%7C507f1f77bcf86cd799439011"},
		{"colon", "google:42", "google%3A42"},
		{"slash", "../bob", "..%2Fbob"},
		{"space", "alice ", "alice%20"},
		{"percent_itself", "50%", "50%25"},
		{"already_escaped_looking_id_is_escaped_again", "auth0%7C1", "auth0%257C1"},
		{"non_ascii", "josé", "jos%C3%A9"},
		{"cyrillic_lookalike", "\u0430lice", "%D0%B0lice"},
		{"braces_of_a_redis_hash_tag", "{a}", "%7Ba%7D"},
		{"control_byte", "a\nb", "a%0Ab"},
		{"invalid_utf8", "\xff", "%FF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Escape(tc.id); got != tc.want {
				t.Fatalf("Escape(%q) = %q, want %q", tc.id, got, tc.want)
			}
			for _, name := range []string{User(tc.id), Tenant(tc.id)} {
				_, arg, err := Parse(name)
				if err != nil || arg != tc.want {
					t.Fatalf("Parse(%q) = %q, %v", name, arg, err)
				}
				if back, ok := unescape(arg); !ok || back != tc.id {
					t.Fatalf("unescape(%q) = %q, %v; want %q", arg, back, ok, tc.id)
				}
			}
		})
	}
	t.Run("every_id_of_1_to_256_bytes_has_a_valid_name", func(t *testing.T) {
		for _, id := range []string{"x", strings.Repeat("a", 256), strings.Repeat("é", 128), strings.Repeat("|", 256), strings.Repeat("\x00", 256)} {
			if !Valid(User(id)) || !Valid(Tenant(id)) {
				t.Errorf("no valid room for a %d-byte id", len(id))
			}
		}
		for _, id := range []string{"", strings.Repeat("a", 257), strings.Repeat("|", 257)} {
			if Valid(User(id)) {
				t.Errorf("User of a %d-byte id is valid", len(id))
			}
		}
	})
	t.Run("distinct_ids_have_distinct_names", func(t *testing.T) {
		ids := []string{"alice", "Alice", "alice ", "\u0430lice", "auth0|1", "auth0%7C1", "auth0%257C1", "auth0:1", "a/b", "a%2Fb"}
		seen := make(map[string]string)
		for _, id := range ids {
			if prev, ok := seen[User(id)]; ok {
				t.Errorf("%q and %q share %s", prev, id, User(id))
			}
			seen[User(id)] = id
		}
	})
}

// unescape is Unescape, reporting success as a bool.
func unescape(arg string) (string, bool) {
	id, err := Unescape(arg)
	return id, err == nil
}

func TestUnescapeRefusesWhatIsNotAnEscape(t *testing.T) {
	for _, arg := range []string{"", "a b", "%7c", "%61", "%", "%7", "a:b", strings.Repeat("a", maxArgLen+1)} {
		if id, err := Unescape(arg); err == nil || !errors.Is(err, ErrInvalidName) {
			t.Errorf("Unescape(%q) = %q, %v; want an error wrapping ErrInvalidName", arg, id, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"global", "user:42", "tenant:acme", "user:", ":x", "a:b:c", "user:\xff",
		"user:auth0%7C1", "user:%7c", "user:%61", "user:%", strings.Repeat("k", 31) + ":" + strings.Repeat("a", 96)} {
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
		// Any accepted argument stands for one id, whose user and tenant
		// rooms have that same argument: one name per id, one id per name.
		if arg != "" {
			id, ok := unescape(arg)
			if !ok || Escape(id) != arg {
				t.Fatalf("argument %q decodes to %q, which escapes to %q", arg, id, Escape(id))
			}
			for _, b := range []struct {
				name, kind string
			}{{User(id), "user"}, {Tenant(id), "tenant"}} {
				k, a, err := Parse(b.name)
				if err != nil || k != b.kind || a != arg {
					t.Fatalf("Parse(%q) = %q, %q, %v; want %q, %q", b.name, k, a, err, b.kind, arg)
				}
			}
		}
	})
}

// FuzzEscape: every id of 1 to 256 bytes, whatever its bytes, has a valid
// user room that decodes back to it, and a plain id's room is "user:" + id.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"alice", "auth0|507f1f77bcf86cd799439011", "a b", "josé", "%", "\xff\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		name := User(id)
		if len(id) == 0 || len(id) > maxArgBytes {
			if Valid(name) {
				t.Fatalf("User of a %d-byte id is valid", len(id))
			}
			return
		}
		_, arg, err := Parse(name)
		if err != nil {
			t.Fatalf("User(%q) = %q: %v", id, name, err)
		}
		if back, ok := unescape(arg); !ok || back != id {
			t.Fatalf("User(%q) = %q decodes to %q", id, name, back)
		}
		plain := true
		for i := 0; i < len(id); i++ {
			plain = plain && argByte[id[i]]
		}
		if plain != (arg == id) {
			t.Fatalf("User(%q) = %q; a plain id must stay as it is, any other must change", id, name)
		}
	})
}
