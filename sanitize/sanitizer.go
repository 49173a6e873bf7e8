package sanitize

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// Options configures New. The zero value is the safe default.
type Options struct {
	// Default is the policy for fields tagged `sanitize:"html"`. Default nil
	// means Strict.
	Default *Policy
}

// Sanitizer applies policies to the tagged string fields of structs. The
// per-type field plans are computed on first use and cached, so the
// reflection cost of reading tags is paid once per message type. It is safe
// for concurrent use; the zero value behaves as New(Options{}).
type Sanitizer struct {
	html  *Policy  // nil means Strict
	plans sync.Map // reflect.Type of a struct → *plan; entries are never modified once stored
}

// New returns a Sanitizer for opts.
func New(opts Options) *Sanitizer {
	return &Sanitizer{html: opts.Default}
}

// maxDepth bounds how many nested structs Struct descends through. Decoded
// JSON has no cycles, but it can nest deeply; past this depth a message is
// refused rather than walked.
const maxDepth = 64

var (
	errTooDeep = fmt.Errorf("sanitize: structs nested more than %d deep", maxDepth)
	// errInvalidTag is wrapped by the errors about misused tags.
	errInvalidTag = errors.New("sanitize: invalid sanitize tag")
)

// Struct sanitizes, in place, every tagged field reachable from v, which must
// be a non-nil pointer to a struct. It returns an error for any other v, for
// a struct type whose tags are misused (an unknown tag value, a tag on an
// unsupported or unexported field), and for values nested deeper than 64
// structs. On the last error v may be partly sanitized and must be discarded.
//
// Struct follows struct fields, pointers to structs and slices of either;
// tagged fields inside maps, arrays and interface values are not reached. A
// struct reached through several pointers, or
// through a pointer cycle, is visited once.
func (s *Sanitizer) Struct(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("sanitize: Struct needs a non-nil pointer to a struct, got %T", v)
	}
	p := s.plan(rv.Elem().Type())
	if p.err != nil {
		return p.err
	}
	if !p.needed {
		return nil
	}
	var w walker
	w.first(rv.Pointer(), p)
	return w.walk(p, rv.Elem(), 0)
}

// Needed reports whether values of type t (a struct or a pointer to one)
// have any field for Struct to sanitize, so that a caller can skip the call
// for types that declare none. It also reports true when t misuses the tag,
// so that Struct gets to return the error.
func (s *Sanitizer) Needed(t reflect.Type) bool {
	if t == nil {
		return false
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	return s.plan(t).needed
}

// walker carries the state of one Struct call: the pointers already
// followed, so that shared or cyclic data is visited once. The first few live
// in an array inside the walker, which keeps a typical message
// allocation-free; a walker must therefore not be copied or referenced from
// itself, or it would move to the heap.
type walker struct {
	n    int                // entries of buf in use
	buf  [16]visit          // searched linearly
	more map[visit]struct{} // every visit once buf is full
}

// visit names a followed pointer. The plan is part of the key because a
// struct and its first field share an address.
type visit struct {
	addr uintptr
	p    *plan // nil for a *string
}

// first records a pointer and reports whether it had not been followed yet.
func (w *walker) first(addr uintptr, p *plan) bool {
	k := visit{addr, p}
	if w.more != nil {
		if _, ok := w.more[k]; ok {
			return false
		}
		w.more[k] = struct{}{}
		return true
	}
	for _, v := range w.buf[:w.n] {
		if v == k {
			return false
		}
	}
	if w.n < len(w.buf) {
		w.buf[w.n] = k
		w.n++
		return true
	}
	w.more = make(map[visit]struct{}, 4*len(w.buf))
	for _, v := range w.buf {
		w.more[v] = struct{}{}
	}
	w.more[k] = struct{}{}
	return true
}

func (w *walker) walk(p *plan, v reflect.Value, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	for i := range p.ops {
		op := &p.ops[i]
		f := v.Field(op.index)
		switch op.kind {
		case opString:
			setString(f, op.policy)
		case opStringPtr:
			if !f.IsNil() && w.first(f.Pointer(), nil) {
				setString(f.Elem(), op.policy)
			}
		case opStringSlice:
			for j := range f.Len() {
				setString(f.Index(j), op.policy)
			}
		case opStruct:
			if err := w.walk(op.sub, f, depth+1); err != nil {
				return err
			}
		case opStructPtr:
			if err := w.follow(op.sub, f, depth); err != nil {
				return err
			}
		case opStructSlice:
			for j := range f.Len() {
				if err := w.walk(op.sub, f.Index(j), depth+1); err != nil {
					return err
				}
			}
		case opStructPtrSlice:
			for j := range f.Len() {
				if err := w.follow(op.sub, f.Index(j), depth); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// follow walks the struct ptr points to, unless it is nil or was walked.
func (w *walker) follow(p *plan, ptr reflect.Value, depth int) error {
	if ptr.IsNil() || !w.first(ptr.Pointer(), p) {
		return nil
	}
	return w.walk(p, ptr.Elem(), depth+1)
}

func setString(f reflect.Value, p *Policy) {
	in := f.String()
	if out := p.String(in); out != in {
		f.SetString(out)
	}
}
