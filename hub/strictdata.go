package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// encoding/json matches an object's keys to struct fields case-insensitively
// ("TO" fills `json:"to"`), accepts keys written with escapes, and lets the
// last of two equal keys win. The envelope is decoded strictly for that
// reason (internal/protocol's scanner): a frame must not read one way to a
// proxy, a log filter or an audit trail in front of wsgate and another way
// to the handler. checkDataKeys holds a handler's data to the same rule
// before encoding/json decodes it: every object key spelled without
// escapes and at most once, and, for an object decoded into a struct,
// exactly as the field's JSON name.

var (
	errDuplicateKey = errors.New("a key appears twice")
	errEscapedKey   = errors.New("a key is written with an escape")
)

// dataFrame is one open object or array of the walk.
type dataFrame struct {
	t      reflect.Type // the struct an object decodes into, an array's element type; nil: anything
	values reflect.Type // the value type of an object that decodes into a map
	object bool
	keys   []string            // the keys seen so far in this object, while they are few
	seen   map[string]struct{} // ... and once they are many, so that a check stays linear
}

// Bounds of checkDataKeys: past manyKeys keys an object's keys go into a
// map; past maxDataDepth nested objects and arrays the data is refused (a
// handler's input is not that deep, and the walk's stack stays small).
const (
	manyKeys     = 16
	maxDataDepth = 256
)

var errTooDeep = errors.New("data is nested too deeply")

// checkDataKeys walks data, a valid JSON value, with t, the type it decodes
// into, and refuses ambiguous keys.
func checkDataKeys(data []byte, t reflect.Type) error {
	var stack []dataFrame
	cur := t
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{':
			if len(stack) == maxDataDepth {
				return errTooDeep
			}
			stack = append(stack, dataFrame{t: structOrNil(cur), values: mapValues(cur), object: true})
		case '[':
			if len(stack) == maxDataDepth {
				return errTooDeep
			}
			stack = append(stack, dataFrame{t: elemOf(cur)})
			cur = elemOf(cur)
		case '}', ']':
			stack = stack[:len(stack)-1]
		case '"':
			end := stringEnd(data, i)
			if n := len(stack); n > 0 && stack[n-1].object && isKey(data, end) {
				f := &stack[n-1]
				key := data[i+1 : end]
				next, err := f.key(key)
				if err != nil {
					return err
				}
				cur = next
			}
			i = end
		case ',':
			if n := len(stack); n > 0 && !stack[n-1].object {
				cur = stack[n-1].t
			}
		}
	}
	return nil
}

// key records key in the object f and returns the type of its value.
func (f *dataFrame) key(raw []byte) (reflect.Type, error) {
	if slices.Contains(raw, '\\') {
		return nil, errEscapedKey
	}
	key := string(raw)
	if f.seen != nil {
		if _, dup := f.seen[key]; dup {
			return nil, fmt.Errorf("%w: %q", errDuplicateKey, key)
		}
		f.seen[key] = struct{}{}
	} else {
		if slices.Contains(f.keys, key) {
			return nil, fmt.Errorf("%w: %q", errDuplicateKey, key)
		}
		f.keys = append(f.keys, key)
		if len(f.keys) > manyKeys {
			f.seen = make(map[string]struct{}, 2*len(f.keys))
			for _, k := range f.keys {
				f.seen[k] = struct{}{}
			}
			f.keys = nil
		}
	}
	if f.t == nil {
		return f.values, nil
	}
	fields := jsonFields(f.t)
	ft, ok := fields[key]
	if !ok {
		return nil, fmt.Errorf("unknown field %q", key)
	}
	return ft, nil
}

// stringEnd returns the index of the quote closing the string that opens at
// data[i].
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(data) - 1
}

// isKey reports whether the string ending at data[end] is followed by a
// colon: an object key rather than a value.
func isKey(data []byte, end int) bool {
	for j := end + 1; j < len(data); j++ {
		switch data[j] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// deref follows pointers; a type that decodes itself is nil (anything).
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	return t
}

// structOrNil is the struct an object decodes into, or nil for a map or
// anything else, whose keys are the client's.
func structOrNil(t reflect.Type) reflect.Type {
	if t = deref(t); t != nil && t.Kind() == reflect.Struct {
		return t
	}
	return nil
}

// mapValues is the value type of a map an object decodes into, or nil.
func mapValues(t reflect.Type) reflect.Type {
	if t = deref(t); t != nil && t.Kind() == reflect.Map {
		return t.Elem()
	}
	return nil
}

// elemOf is the type of an array's elements.
func elemOf(t reflect.Type) reflect.Type {
	if t = deref(t); t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		return t.Elem()
	}
	return nil
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields returns the JSON names of t's fields, as encoding/json sees
// them (promoted fields of embedded structs included), and their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if v, ok := fieldCache.Load(t); ok {
		return v.(map[string]reflect.Type)
	}
	fields := make(map[string]reflect.Type)
	for _, f := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
			continue
		case f.Anonymous && name == "" && deref(f.Type) != nil && deref(f.Type).Kind() == reflect.Struct:
			continue // its fields are promoted
		case name == "":
			name = f.Name
		}
		if _, dup := fields[name]; !dup || len(f.Index) == 1 {
			fields[name] = f.Type
		}
	}
	fieldCache.Store(t, fields)
	return fields
}
