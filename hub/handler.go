package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/go-playground/validator/v10"

	"github.com/wsgate/wsgate/internal/protocol"
)

// handler is a registered event: a type-erased decoder and call built by
// Handle so that dispatch needs no reflection per message.
type handler struct {
	event string
	limit Limit
	// decode turns the raw data into a validated, sanitized In.
	decode func(data []byte) (any, error)
	// fn runs the user function.
	fn HandlerFunc
}

// HandlerFunc is a registered handler with its types erased, as Middleware
// sees it: in is the handler's input (of its In type), decoded, validated
// and sanitized; out is what the handler returned, to be sent as the ack's
// data.
type HandlerFunc func(ctx Context, in any) (out any, err error)

// Middleware wraps every handler call — tracing, audit, per-event
// authorization — without touching each registration. It runs on the
// handler's goroutine, within its deadline, after validation; what it
// returns is answered like a handler's result (an *Error to send a code).
type Middleware func(next HandlerFunc) HandlerFunc

// Use adds middleware around every handler, the first given outermost. It
// applies to the messages handled after it returns; call it before serving.
func (h *Hub) Use(mw ...Middleware) {
	h.handlersMu.Lock()
	defer h.handlersMu.Unlock()
	h.middleware = append(slices.Clip(h.middleware), mw...)
}

// chain wraps fn in the middleware.
func (h *Hub) chain(fn HandlerFunc) HandlerFunc {
	h.handlersMu.RLock()
	mws := h.middleware
	h.handlersMu.RUnlock()
	for i := len(mws) - 1; i >= 0; i-- {
		fn = mws[i](fn)
	}
	return fn
}

// HandlerOption configures one registered event.
type HandlerOption func(*handler)

// WithRateLimit sets the per-connection token bucket for this event,
// replacing Options.EventRate.
func WithRateLimit(l Limit) HandlerOption {
	return func(hd *handler) { hd.limit = l }
}

// Handle registers fn for client events named event. Before fn runs, the
// message's data is decoded into In with unknown fields rejected, validated
// with go-playground/validator struct tags (`validate:"required,max=100"`),
// and its `sanitize:"html"` fields are cleaned; a message that fails any step
// is answered with INVALID_MESSAGE and fn never sees it. fn's result is sent
// as the ack's data when the client asked for one; return an *Error to send a
// specific error code.
//
// Like http.ServeMux.Handle, Handle panics on a programming error: an event
// name outside [A-Za-z0-9:._-]{1,64}, a nil fn or a duplicate registration.
func Handle[In, Out any](h *Hub, event string, fn func(ctx Context, in In) (Out, error), opts ...HandlerOption) {
	if !protocol.ValidEventName(event) {
		panic(fmt.Sprintf("hub: invalid event name %q", event))
	}
	if fn == nil {
		panic("hub: nil handler for " + event)
	}
	inType := reflect.TypeFor[In]()
	if inType.Kind() == reflect.Pointer {
		// Validation and sanitizing apply to struct values; a pointer input
		// would silently skip both.
		panic(fmt.Sprintf("hub: handler input for %s must not be a pointer (%v)", event, inType))
	}
	isStruct := inType.Kind() == reflect.Struct
	container := isContainer(inType)
	if container && h.opts.Sanitizer.Needed(elemStruct(inType)) {
		// Sanitizing walks struct fields; the elements of a slice or map
		// input would be left as they came.
		panic(fmt.Sprintf("hub: handler input for %s: wrap the %v in a struct to sanitize its elements", event, inType))
	}
	sanitize := isStruct && h.opts.Sanitizer.Needed(inType)
	if sanitize {
		// A misused sanitize tag is a programming error: report it now, not
		// to every client as INVALID_MESSAGE with the type's name.
		if err := h.opts.Sanitizer.Struct(reflect.New(inType).Interface()); err != nil {
			panic(fmt.Sprintf("hub: handler input for %s: %v", event, err))
		}
	}
	hd := &handler{event: event, limit: h.opts.EventRate}
	hd.decode = func(data []byte) (any, error) {
		in := new(In)
		if data == nil && isStruct {
			data = []byte("{}")
		}
		if data != nil {
			if err := checkDataKeys(data, inType); err != nil {
				return nil, err
			}
			if err := decodeStrict(data, in); err != nil {
				return nil, err
			}
		}
		switch {
		case isStruct:
			if err := h.validate.Struct(in); err != nil {
				return nil, validationError(err)
			}
		case container:
			// Every element of a slice, array or map input is validated
			// like a struct input.
			if err := h.validate.Var(*in, "dive"); err != nil {
				return nil, validationError(err)
			}
		}
		if sanitize {
			if err := h.opts.Sanitizer.Struct(in); err != nil {
				// Its text names the type's structure: the client gets a
				// fixed message.
				return nil, errInvalidData
			}
		}
		return *in, nil
	}
	hd.fn = func(ctx Context, in any) (any, error) { return fn(ctx, in.(In)) }
	for _, o := range opts {
		o(hd)
	}
	h.handlersMu.Lock()
	defer h.handlersMu.Unlock()
	if _, dup := h.handlers[event]; dup {
		panic("hub: duplicate handler for " + event)
	}
	h.handlers[event] = hd
}

// isContainer reports whether t is a slice, an array or a map.
func isContainer(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return true
	}
	return false
}

// elemStruct returns the struct type a container's elements are (through
// pointers and nested containers), or t's element type.
func elemStruct(t reflect.Type) reflect.Type {
	for isContainer(t) || t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// RegisterValidation adds a validation tag for handler inputs, e.g.
// `validate:"sku"`: fn receives the field's value and reports whether it is
// valid. Register tags before the handlers that use them; it fails for an
// empty tag or one validator/v10 already defines.
func (h *Hub) RegisterValidation(tag string, fn func(field reflect.Value) bool) error {
	if tag == "" || fn == nil {
		return errors.New("hub: RegisterValidation needs a tag and a func")
	}
	h.handlersMu.Lock()
	defer h.handlersMu.Unlock()
	if err := h.validate.RegisterValidation(tag, func(fl validator.FieldLevel) bool { return fn(fl.Field()) }); err != nil {
		return fmt.Errorf("hub: register validation %q: %w", tag, err)
	}
	return nil
}

func (h *Hub) handler(event string) *handler {
	h.handlersMu.RLock()
	defer h.handlersMu.RUnlock()
	return h.handlers[event]
}

var errInvalidData = errors.New("invalid data")

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute) && ute.Field != "":
			return fmt.Errorf("field %q has the wrong type", ute.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return errors.New("data is not valid JSON for this event")
		}
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// encodeData marshals a handler result; an empty struct or nil means no data.
func encodeData(out any) ([]byte, error) {
	if out == nil {
		return nil, nil
	}
	if v := reflect.ValueOf(out); v.Kind() == reflect.Struct && v.NumField() == 0 {
		return nil, nil
	}
	return json.Marshal(out)
}

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	// Report JSON names, which are what the client sent.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		if name == "" {
			return f.Name
		}
		return name
	})
	return v
}

// validationError names the first failing field and rule: information about
// the client's own input, never about the server.
func validationError(err error) error {
	var ves validator.ValidationErrors
	if errors.As(err, &ves) && len(ves) > 0 {
		fe := ves[0]
		field := fe.Namespace()
		if _, rest, ok := strings.Cut(field, "."); ok {
			field = rest
		}
		return fmt.Errorf("field %q fails %q", field, fe.Tag())
	}
	return errors.New("invalid data")
}
