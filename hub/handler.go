package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"

	"github.com/wsgate/wsgate/internal/protocol"
)

// handler is a registered event: a type-erased decoder and call built by
// Handle so that dispatch needs no reflection per message.
type handler struct {
	event string
	limit Limit
	// decode turns the raw data into a validated, sanitized *In.
	decode func(data []byte) (any, error)
	// call runs the user function and encodes its result.
	call func(ctx Context, in any) ([]byte, error)
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
			if err := decodeStrict(data, in); err != nil {
				return nil, err
			}
		}
		if isStruct {
			if err := h.validate.Struct(in); err != nil {
				return nil, validationError(err)
			}
		}
		if sanitize {
			if err := h.opts.Sanitizer.Struct(in); err != nil {
				return nil, err
			}
		}
		return in, nil
	}
	hd.call = func(ctx Context, in any) ([]byte, error) {
		out, err := fn(ctx, *in.(*In))
		if err != nil {
			return nil, err
		}
		return encodeData(out)
	}
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

func (h *Hub) handler(event string) *handler {
	h.handlersMu.RLock()
	defer h.handlersMu.RUnlock()
	return h.handlers[event]
}

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
