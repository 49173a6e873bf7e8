package room

import (
	"errors"
	"fmt"
)

// Global is the room every connection with the configured global role joins.
const Global = "global"

// Limits of a room name, chosen so that a name fits comfortably in a log line
// and a broker topic while still holding a UUID, an e-mail address or a
// composite key as its argument.
const (
	maxNameLen = 128
	maxKindLen = 32
	maxArgLen  = 96
)

// ErrInvalidName is wrapped by every error about a malformed room name.
var ErrInvalidName = errors.New("room: invalid room name")

// User returns the name of the personal room of user id: "user:" + id.
// The result is only usable when id is a valid argument (see Parse).
func User(id string) string { return "user:" + id }

// Tenant returns the name of the room of tenant id: "tenant:" + id.
// The result is only usable when id is a valid argument (see Parse).
func Tenant(id string) string { return "tenant:" + id }

// Parse splits a room name into its kind and its argument.
//
// A name is "kind" or "kind:arg", at most 128 bytes. kind matches
// [a-z][a-z0-9_-]{0,31}; arg is 1 to 96 bytes of [A-Za-z0-9._~@+-]. The
// alphabet is ASCII only and excludes separators, spaces and control bytes, so
// a valid name can be logged and used as a broker topic without escaping, and
// two names that look alike are the same name. An invalid name returns an
// error wrapping ErrInvalidName.
func Parse(name string) (kind, arg string, err error) {
	if len(name) == 0 {
		return "", "", fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > maxNameLen {
		return "", "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, maxNameLen)
	}
	kind, arg, hasArg := cut(name)
	if !validKind(kind) {
		return "", "", fmt.Errorf("%w: kind must match [a-z][a-z0-9_-]{0,31}", ErrInvalidName)
	}
	if hasArg && !validArg(arg) {
		return "", "", fmt.Errorf("%w: argument must be 1 to %d bytes of [A-Za-z0-9._~@+-]", ErrInvalidName, maxArgLen)
	}
	return kind, arg, nil
}

// Valid reports whether name is a well-formed room name (see Parse).
func Valid(name string) bool {
	_, _, err := Parse(name)
	return err == nil
}

// cut splits at the first colon. A second colon ends up in arg, where
// validArg rejects it.
func cut(name string) (kind, arg string, hasArg bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == ':' {
			return name[:i], name[i+1:], true
		}
	}
	return name, "", false
}

func validKind(k string) bool {
	if len(k) == 0 || len(k) > maxKindLen || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// argByte marks the bytes allowed in an argument. A table rather than a
// switch keeps the check branch-light; bytes ≥ 0x80 stay false, which is what
// rules out non-ASCII (and thus invalid UTF-8) names.
var argByte = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._~@+-" {
		t[c] = true
	}
	return t
}()

func validArg(a string) bool {
	if len(a) == 0 || len(a) > maxArgLen {
		return false
	}
	for i := 0; i < len(a); i++ {
		if !argByte[a[i]] {
			return false
		}
	}
	return true
}
