package sanitize

import (
	"fmt"
	"reflect"
)

// opKind says how to reach the strings of one field.
type opKind uint8

const (
	opString         opKind = iota // tagged string
	opStringPtr                    // tagged *string
	opStringSlice                  // tagged []string
	opStruct                       // struct with tagged fields, embedded or not
	opStructPtr                    // *struct
	opStructSlice                  // []struct
	opStructPtrSlice               // []*struct
)

// fieldOp is the work for one field of a struct.
type fieldOp struct {
	index  int
	kind   opKind
	policy *Policy // for the string kinds
	sub    *plan   // for the struct kinds
}

// plan is what Struct does to one struct type: the fields to visit, in
// declaration order. Plans of recursive types point to each other, which is
// why a plan is built before the plans of its fields are known.
type plan struct {
	typ    reflect.Type
	ops    []fieldOp
	needed bool  // ops reach at least one string, or err is set
	err    error // the first misuse of the tag in the type or the types it reaches
}

// plan returns the cached plan for the struct type t, building it, and the
// plans of every struct type it reaches, on first use.
func (s *Sanitizer) plan(t reflect.Type) *plan {
	if p, ok := s.plans.Load(t); ok {
		return p.(*plan)
	}
	b := builder{s: s, plans: map[reflect.Type]*plan{}}
	b.build(t)
	b.finish()
	// Two goroutines may build the same type at once; both results are
	// equivalent and the first stored wins.
	for _, p := range b.order {
		s.plans.LoadOrStore(p.typ, p)
	}
	p, _ := s.plans.Load(t)
	return p.(*plan)
}

// builder builds the plans of one type and of the struct types it reaches
// that are not cached yet. It is used by one goroutine.
type builder struct {
	s     *Sanitizer
	plans map[reflect.Type]*plan // built by this builder, finished or not
	order []*plan
}

func (b *builder) build(t reflect.Type) *plan {
	if p := b.plans[t]; p != nil {
		return p // a recursive type: the plan is being built further up
	}
	if p, ok := b.s.plans.Load(t); ok {
		return p.(*plan)
	}
	p := &plan{typ: t}
	b.plans[t] = p
	b.order = append(b.order, p)
	for i := range t.NumField() {
		f := t.Field(i)
		op, ok, err := b.field(f)
		if err != nil {
			p.err = fmt.Errorf("%w: field %s.%s: %w", errInvalidTag, t, f.Name, err)
			break
		}
		if ok {
			op.index = i
			p.ops = append(p.ops, op)
		}
	}
	return p
}

// field returns the operation for one field, or ok == false when the field
// is left alone.
func (b *builder) field(f reflect.StructField) (op fieldOp, ok bool, err error) {
	tag, tagged := f.Tag.Lookup("sanitize")
	if tagged {
		return b.taggedField(f, tag)
	}
	// An unexported field cannot be set through reflection, except the
	// exported fields of an embedded struct, which are promoted.
	if !f.IsExported() && !f.Anonymous {
		return fieldOp{}, false, nil
	}
	t := f.Type
	switch {
	case t.Kind() == reflect.Struct:
		return fieldOp{kind: opStruct, sub: b.build(t)}, true, nil
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		return fieldOp{kind: opStructPtr, sub: b.build(t.Elem())}, true, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return fieldOp{kind: opStructSlice, sub: b.build(t.Elem())}, true, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Pointer && t.Elem().Elem().Kind() == reflect.Struct:
		return fieldOp{kind: opStructPtrSlice, sub: b.build(t.Elem().Elem())}, true, nil
	}
	return fieldOp{}, false, nil
}

// taggedField refuses every tag it cannot honour: a declared field that is
// silently skipped would be an unsanitized field the author believes safe.
func (b *builder) taggedField(f reflect.StructField, tag string) (fieldOp, bool, error) {
	var p *Policy
	switch tag {
	case "html":
		p = b.s.html
		if p == nil {
			p = Strict()
		}
	case "ugc":
		p = UGC()
	default:
		return fieldOp{}, false, fmt.Errorf(`unknown value %q, want "html" or "ugc"`, tag)
	}
	if !f.IsExported() {
		return fieldOp{}, false, fmt.Errorf("unexported fields cannot be sanitized")
	}
	t := f.Type
	switch {
	case t.Kind() == reflect.String:
		return fieldOp{kind: opString, policy: p}, true, nil
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.String:
		return fieldOp{kind: opStringPtr, policy: p}, true, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return fieldOp{kind: opStringSlice, policy: p}, true, nil
	}
	return fieldOp{}, false, fmt.Errorf("type %s cannot be tagged: use string, *string or []string, and tag the fields of nested structs instead", t)
}

// finish settles what the plans of a recursive group can only know
// together: an error anywhere makes every plan that reaches it fail, and a
// plan is needed if it reaches a string. Both are fixed points; each pass
// that changes something settles at least one plan, so the loop ends within
// len(order) passes. Then field operations that lead nowhere are dropped.
func (b *builder) finish() {
	for _, p := range b.order {
		p.needed = p.err != nil
		for _, op := range p.ops {
			if op.sub == nil {
				p.needed = true
			}
		}
	}
	for pass := 0; pass <= len(b.order); pass++ {
		changed := false
		for _, p := range b.order {
			for _, op := range p.ops {
				if op.sub == nil {
					continue
				}
				if op.sub.err != nil && p.err == nil {
					p.err, p.needed, changed = op.sub.err, true, true
				}
				if op.sub.needed && !p.needed {
					p.needed, changed = true, true
				}
			}
		}
		if !changed {
			break
		}
	}
	for _, p := range b.order {
		kept := p.ops[:0]
		for _, op := range p.ops {
			if op.sub == nil || op.sub.needed {
				kept = append(kept, op)
			}
		}
		p.ops = kept
	}
}
