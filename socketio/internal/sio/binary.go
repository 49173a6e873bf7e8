package sio

import (
	"bytes"
	"crypto/rand"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
)

// Binary deconstruction of Go values.
//
// encoding/json writes a []byte as a base64 string and offers no hook to do
// otherwise, and reimplementing its rules for struct fields (tags,
// embedding, omitempty, omitzero) would drift from them. So marshalArg lets
// encoding/json do all the work on a copy of the value in which each
// non-empty []byte is replaced by a marker: 16 bytes made of a random
// per-call nonce and the attachment's index. The markers come out as base64
// strings no other string can equal (96 random bits), which are then
// replaced by placeholders numbered in the order they appear, the order a
// reader meets them (as the reference encoder numbers them).
//
// What stays a base64 string: empty []byte (a zero-length attachment would
// change how omitempty treats the field), values under a json.Marshaler or
// encoding.TextMarshaler (their encoding is theirs), and fields promoted
// through an embedded pointer to an unexported struct (the pointee cannot be
// copied through reflection, and is not ours to change).

const (
	nonceLen  = 12
	markerLen = nonceLen + 4
	// nonceB64Len is nonceLen bytes in base64: a multiple of 3, so the
	// nonce's text is the same in every marker.
	nonceB64Len = nonceLen / 3 * 4
	// maxWalkDepth matches the nesting at which encoding/json gives up on a
	// cyclic value.
	maxWalkDepth = 1000
)

// marshalJSON marshals v as JavaScript would write it: no HTML escaping.
func marshalJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, invalid("marshal argument: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// marshalArg marshals v, appending the []byte found in it to atts and
// writing placeholders numbered after those already in atts.
func marshalArg(v any, atts [][]byte) (raw json.RawMessage, _ [][]byte, err error) {
	// The walk below only copies values reached through exported fields, so
	// reflect should never panic on it; if a value shape proves that wrong,
	// the caller gets an error rather than a crashed connection goroutine.
	defer func() {
		if r := recover(); r != nil {
			raw, err = nil, invalid("marshal argument: %v", r)
		}
	}()
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || !mayHoldBytes(rv.Type()) {
		raw, err = marshalJSON(v)
		return raw, atts, err
	}
	w := walker{}
	_, _ = rand.Read(w.nonce[:]) // crypto/rand.Read does not fail (it aborts the program instead)
	marked, _, err := w.rewrite(rv)
	if err != nil {
		return nil, atts, err
	}
	raw, err = marshalJSON(marked.Interface())
	if err != nil || len(w.found) == 0 {
		return raw, atts, err
	}
	return w.placeholders(raw, atts)
}

type walker struct {
	nonce [nonceLen]byte
	found [][]byte // attachment bytes, by marker index
	depth int
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// opaque reports whether encoding/json hands t to its own marshaller.
func opaque(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(marshalerType) || pt.Implements(marshalerType) ||
		t.Implements(textMarshalerType) || pt.Implements(textMarshalerType)
}

// isBytes reports a []byte or a named type of it: what encoding/json writes
// as base64 and a marker can be converted to.
func isBytes(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem() == byteType
}

var byteType = reflect.TypeFor[byte]()

// rewrite returns v with markers in place of its []byte, copying only what
// leads to one, and whether it changed anything (if not, it returns v).
func (w *walker) rewrite(v reflect.Value) (reflect.Value, bool, error) {
	if !v.IsValid() || !mayHoldBytes(v.Type()) {
		return v, false, nil
	}
	if w.depth++; w.depth > maxWalkDepth {
		return v, false, invalid("argument nested deeper than %d (a cycle?)", maxWalkDepth)
	}
	defer func() { w.depth-- }()
	switch v.Kind() {
	case reflect.Slice:
		if isBytes(v.Type()) {
			return w.mark(v)
		}
		if v.IsNil() {
			return v, false, nil
		}
		return w.elements(v, reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
	case reflect.Array:
		return w.elements(v, reflect.New(v.Type()).Elem())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return v, false, nil
		}
		e, changed, err := w.rewrite(v.Elem())
		if err != nil || !changed {
			return v, false, err
		}
		if v.Kind() == reflect.Pointer {
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(e)
			return p, true, nil
		}
		i := reflect.New(v.Type()).Elem()
		i.Set(e)
		return i, true, nil
	case reflect.Map:
		return w.mapValues(v)
	case reflect.Struct:
		return w.fields(v)
	}
	return v, false, nil
}

// mark records a non-empty []byte and returns its marker, of the same type.
func (w *walker) mark(v reflect.Value) (reflect.Value, bool, error) {
	if v.Len() == 0 {
		return v, false, nil
	}
	if len(w.found) == maxAttachmentsCap {
		return v, false, invalid("more than %d attachments", maxAttachmentsCap)
	}
	m := make([]byte, markerLen)
	copy(m, w.nonce[:])
	binary.BigEndian.PutUint32(m[nonceLen:], uint32(len(w.found)))
	w.found = append(w.found, bytes.Clone(v.Bytes()))
	return reflect.ValueOf(m).Convert(v.Type()), true, nil
}

// elements rewrites the elements of slice or array v into out (a fresh
// value of v's type) and returns out if any changed, v otherwise.
func (w *walker) elements(v, out reflect.Value) (reflect.Value, bool, error) {
	changed := false
	for i := range v.Len() {
		e, c, err := w.rewrite(v.Index(i))
		if err != nil {
			return v, false, err
		}
		changed = changed || c
		out.Index(i).Set(e)
	}
	if !changed {
		return v, false, nil
	}
	return out, true, nil
}

func (w *walker) mapValues(v reflect.Value) (reflect.Value, bool, error) {
	if v.IsNil() {
		return v, false, nil
	}
	out := reflect.MakeMapWithSize(v.Type(), v.Len())
	changed := false
	for it := v.MapRange(); it.Next(); {
		e, c, err := w.rewrite(it.Value())
		if err != nil {
			return v, false, err
		}
		changed = changed || c
		out.SetMapIndex(it.Key(), e)
	}
	if !changed {
		return v, false, nil
	}
	return out, true, nil
}

func (w *walker) fields(v reflect.Value) (reflect.Value, bool, error) {
	var out reflect.Value // an addressable copy of v, made at the first change
	copyOf := func() reflect.Value {
		if !out.IsValid() {
			out = reflect.New(v.Type()).Elem()
			out.Set(v)
		}
		return out
	}
	if err := w.structFields(v, copyOf); err != nil || !out.IsValid() {
		return v, false, err
	}
	return out, true, nil
}

// structFields rewrites the fields encoding/json writes: exported ones, and
// those an embedded unexported struct promotes. The latter cannot be
// replaced as a whole through reflection, so they are rewritten field by
// field inside dst, the struct's place in the copy.
func (w *walker) structFields(v reflect.Value, dst func() reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		switch {
		case f.Tag.Get("json") == "-":
		case f.IsExported():
			e, changed, err := w.rewrite(v.Field(i))
			if err != nil {
				return err
			}
			if changed {
				dst().Field(i).Set(e)
			}
		case promotes(f):
			if err := w.structFields(v.Field(i), func() reflect.Value { return dst().Field(i) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// promotes reports an embedded unexported struct, whose exported fields
// encoding/json writes as the outer struct's. (Through an embedded
// unexported pointer the pointee is the caller's and is not rewritten.)
func promotes(f reflect.StructField) bool {
	return f.Anonymous && !f.IsExported() && f.Type.Kind() == reflect.Struct
}

// placeholders replaces the markers in raw by placeholders and appends the
// attachments to atts in placeholder order.
func (w *walker) placeholders(raw []byte, atts [][]byte) (json.RawMessage, [][]byte, error) {
	prefix := make([]byte, 0, 1+nonceB64Len)
	prefix = append(prefix, '"')
	prefix = base64.StdEncoding.AppendEncode(prefix, w.nonce[:])
	const quoted = 2 + (markerLen+2)/3*4 // "…" around a marker's base64
	out := make([]byte, 0, len(raw))
	for {
		at := bytes.Index(raw, prefix)
		if at < 0 || at+quoted > len(raw) {
			break
		}
		var m [markerLen]byte
		if n, err := base64.StdEncoding.Decode(m[:], raw[at+1:at+quoted-1]); err != nil || n != markerLen {
			return nil, atts, invalid("attachment marker garbled")
		}
		idx := binary.BigEndian.Uint32(m[nonceLen:])
		if int(idx) >= len(w.found) || w.found[idx] == nil {
			return nil, atts, invalid("attachment marker garbled")
		}
		out = append(out, raw[:at]...)
		out = fmt.Appendf(out, `{"_placeholder":true,"num":%d}`, len(atts))
		atts = append(atts, w.found[idx])
		w.found[idx] = nil
		raw = raw[at+quoted:]
	}
	if len(atts) > maxAttachmentsCap {
		return nil, atts, invalid("more than %d attachments", maxAttachmentsCap)
	}
	return append(out, raw...), atts, nil
}

// holdsBytes caches mayHoldBytes per type.
var holdsBytes sync.Map // reflect.Type → bool

// mayHoldBytes reports whether a value of type t can contain a []byte that
// encoding/json would write: a []byte itself, or a container, pointer,
// interface or exported struct field leading to one, outside marshalers.
func mayHoldBytes(t reflect.Type) bool {
	if v, ok := holdsBytes.Load(t); ok {
		return v.(bool)
	}
	r := reaches(t, map[reflect.Type]bool{})
	holdsBytes.Store(t, r)
	return r
}

// reaches is a depth-first search of the types reachable from t; seen
// breaks cycles (a cycle adds no []byte a path would not find anyway).
func reaches(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if opaque(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Slice:
		return isBytes(t) || reaches(t.Elem(), seen)
	case reflect.Array, reflect.Pointer, reflect.Map:
		return reaches(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if (f.IsExported() || promotes(f)) && f.Tag.Get("json") != "-" && reaches(f.Type, seen) {
				return true
			}
		}
	}
	return false
}
