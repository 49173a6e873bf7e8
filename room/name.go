package room

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wsgate/wsgate/auth"
)

// Global is the room every connection with the configured global role joins.
const Global = "global"

// Limits of a room name. An argument stands for at most maxArgBytes bytes,
// the longest user or tenant id auth.JWT accepts, so that every identity
// has a user room and a tenant room; escaped, that is at most three times as
// many bytes.
const (
	maxKindLen  = 32
	maxArgBytes = auth.MaxClaimBytes
	maxArgLen   = 3 * maxArgBytes
	maxNameLen  = maxKindLen + 1 + maxArgLen
)

// ErrInvalidName is wrapped by every error about a malformed room name.
var ErrInvalidName = errors.New("room: invalid room name")

// User returns the name of the personal room of user id: "user:" +
// Escape(id). It is a valid name for every id of 1 to 256 bytes, which
// covers every id auth.JWT accepts; for the common ids made of
// [A-Za-z0-9._~@+-] only, it is simply "user:" + id.
func User(id string) string { return "user:" + Escape(id) }

// Tenant returns the name of the room of tenant id: "tenant:" + Escape(id),
// valid for every id of 1 to 256 bytes, like User.
func Tenant(id string) string { return "tenant:" + Escape(id) }

// Escape returns s as a room-name argument: every byte of
// [A-Za-z0-9._~@+-] stands for itself and every other byte is written %XX,
// with two upper-case hexadecimal digits. An s made of those characters
// only is returned unchanged, so plain ids keep their plain names; any
// other s gets a name with at least one '%', a byte no plain id holds, so
// an escaped id never collides with a plain one. The mapping is one to one:
// two ids have the same argument only if they are the same bytes ("alice"
// and "аlice", with a Cyrillic а, stay two rooms). The result is a valid
// argument when s has 1 to 256 bytes.
//
// Escape("auth0|507f1f77bcf86cd799439011") is "auth0%7C507f1f77bcf86cd799439011".
func Escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !argByte[s[i]] {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if argByte[c] {
			out = append(out, c)
			continue
		}
		out = append(out, '%', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(out)
}

// Unescape returns the id an argument stands for: Escape's inverse, so that
// Unescape(Escape(id)) is id. An argument that is not Escape's spelling of
// an id ("%7c" in lower case, "%61" for a plain 'a', a space) returns an
// error wrapping ErrInvalidName.
func Unescape(arg string) (string, error) {
	if !validArg(arg) {
		return "", fmt.Errorf("%w: argument must be 1 to %d bytes of [A-Za-z0-9._~@+-] or %%XX escapes", ErrInvalidName, maxArgBytes)
	}
	if strings.IndexByte(arg, '%') < 0 {
		return arg, nil
	}
	out := make([]byte, 0, len(arg))
	for i := 0; i < len(arg); i++ {
		if arg[i] != '%' {
			out = append(out, arg[i])
			continue
		}
		out = append(out, byte(upperHex(arg[i+1])<<4|upperHex(arg[i+2])))
		i += 2
	}
	return string(out), nil
}

// Parse splits a room name into its kind and its argument.
//
// A name is "kind" or "kind:arg". kind matches [a-z][a-z0-9_-]{0,31}; arg
// is what Escape returns for 1 to 256 bytes: characters of
// [A-Za-z0-9._~@+-], and %XX (upper-case hexadecimal) for any other byte.
// Only that one spelling is accepted: "%61" (for 'a') and "%7c" (lower case)
// are invalid, so each argument has exactly one name. A name is ASCII only
// and holds no separator, space or control byte, so it can be logged and
// used as a broker topic without further escaping, and two names that look
// alike are the same name. An invalid name returns an error wrapping
// ErrInvalidName.
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
		return "", "", fmt.Errorf("%w: argument must be 1 to %d bytes of [A-Za-z0-9._~@+-] or %%XX escapes", ErrInvalidName, maxArgBytes)
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

// validArg reports whether a is a canonical escape (see Escape) of 1 to
// maxArgBytes bytes.
func validArg(a string) bool {
	if len(a) == 0 || len(a) > maxArgLen {
		return false
	}
	n := 0 // bytes a stands for
	for i := 0; i < len(a); i++ {
		n++
		if argByte[a[i]] {
			continue
		}
		if a[i] != '%' || i+2 >= len(a) {
			return false
		}
		hi, lo := upperHex(a[i+1]), upperHex(a[i+2])
		// A byte that could stand for itself must: one spelling per name.
		if hi < 0 || lo < 0 || argByte[hi<<4|lo] {
			return false
		}
		i += 2
	}
	return n <= maxArgBytes
}

// upperHex returns the value of an upper-case hexadecimal digit, or -1.
func upperHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
