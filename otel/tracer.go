package otel

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/wsgate/wsgate/otel"

// Span names.
const (
	SpanHandshake = "wsgate.handshake"
	SpanMessage   = "wsgate.message"
	SpanPublish   = "wsgate.publish"
	SpanDeliver   = "wsgate.deliver"
)

// Attribute keys, beside OpenTelemetry's messaging conventions.
const (
	// AttrEvent is the event name of a message, publish or delivery.
	AttrEvent = attribute.Key("wsgate.event")
	// AttrCode is the protocol code of a refusal or a handler's error
	// (UNAUTHORIZED, FORBIDDEN, INTERNAL, …).
	AttrCode = attribute.Key("wsgate.code")
	// AttrRecipients is how many local connections a delivery reached.
	AttrRecipients = attribute.Key("wsgate.recipients")
	// AttrTopic is the broker topic of a publish or a delivery.
	AttrTopic = attribute.Key("messaging.destination.name")
)

// Options configures New. The zero value traces with the global
// TracerProvider and the W3C trace context.
type Options struct {
	// TracerProvider creates the tracer. Default: otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagator encodes the trace context that travels from a publishing
	// node to the delivering ones, and reads the handshake's parent from
	// the request headers when the request's context holds no span. Every
	// node must use the same. Default: propagation.TraceContext (W3C
	// traceparent and tracestate).
	Propagator propagation.TextMapPropagator
}

// Tracer implements hub.Tracer with OpenTelemetry. Safe for concurrent
// use.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

var _ hub.Tracer = (*Tracer)(nil)

// New returns a Tracer for hub.Options.Tracer.
func New(opts Options) *Tracer {
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := opts.Propagator
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), prop: prop}
}

// Handshake starts the handshake span, a child of the request's span, or
// of the request's trace headers when its context holds no span.
func (t *Tracer) Handshake(r *http.Request) (context.Context, func(error)) {
	ctx := r.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := t.tracer.Start(ctx, SpanHandshake,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("url.path", r.URL.Path)))
	return ctx, func(err error) { end(span, err) }
}

// Message starts the span of one handled message, a child of ctx's (the
// connection's handshake span).
func (t *Tracer) Message(ctx context.Context, event string) (context.Context, func(error)) {
	ctx, span := t.tracer.Start(ctx, SpanMessage,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(AttrEvent.String(event)))
	return ctx, func(err error) { end(span, err) }
}

// Publish starts the span of a broadcast handed to the broker and returns
// its trace context as the carrier.
func (t *Tracer) Publish(ctx context.Context, topic, event string) (context.Context, []byte, func(error)) {
	ctx, span := t.tracer.Start(ctx, SpanPublish,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(AttrTopic.String(topic), AttrEvent.String(event),
			attribute.String("messaging.operation.type", "publish")))
	mc := propagation.MapCarrier{}
	t.prop.Inject(ctx, mc)
	return ctx, encodeCarrier(mc), func(err error) { end(span, err) }
}

// Deliver starts the span of a delivery to this node's connections, linked
// to the publish span the carrier names.
func (t *Tracer) Deliver(carrier []byte, topic, event string) func(int) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(AttrTopic.String(topic), AttrEvent.String(event),
			attribute.String("messaging.operation.type", "deliver")),
	}
	if len(carrier) > 0 {
		pctx := t.prop.Extract(context.Background(), decodeCarrier(carrier))
		if sc := trace.SpanContextFromContext(pctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	// A new root: the delivery happens on its own schedule, on a node that
	// may serve another trace; the link says which publish it carries.
	_, span := t.tracer.Start(context.Background(), SpanDeliver, opts...)
	return func(n int) {
		span.SetAttributes(AttrRecipients.Int(n))
		span.End()
	}
}

// end records err on span, with its protocol code when it has one, and
// ends it.
func end(span trace.Span, err error) {
	if err != nil {
		var rej *protocol.Refusal
		var he *hub.Error
		switch {
		case errors.As(err, &rej):
			span.SetAttributes(AttrCode.String(rej.Code))
		case errors.As(err, &he):
			span.SetAttributes(AttrCode.String(he.Code))
		}
		// The message says what kind of failure, never a cause: a handler's
		// wrapped error may hold what the client must not see, and traces
		// are read by more people than logs.
		span.SetStatus(codes.Error, "failed")
	}
	span.End()
}

// encodeCarrier writes the propagator's fields as "key=value" lines in key
// order.
func encodeCarrier(mc propagation.MapCarrier) []byte {
	if len(mc) == 0 {
		return nil
	}
	keys := mc.Keys()
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(mc[k])
	}
	return []byte(b.String())
}

// decodeCarrier reads what encodeCarrier wrote; malformed lines are
// skipped, and the propagator validates the values.
func decodeCarrier(p []byte) propagation.MapCarrier {
	mc := propagation.MapCarrier{}
	for line := range strings.SplitSeq(string(p), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			mc[k] = v
		}
	}
	return mc
}
