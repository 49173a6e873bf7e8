package hub

import (
	"context"
	"net/http"
)

// Tracer follows a connection and its messages through the hub and the
// broker: the handshake, each handled message, each publish and its
// delivery on every node. The hub depends on no tracing library; an
// implementation maps these calls to one (the separate module
// github.com/wsgate/wsgate/otel does it for OpenTelemetry).
//
// Each method starts a unit of work and returns the func that ends it,
// which the hub calls exactly once. The hub calls them on hot paths and
// outside its locks: implementations must be cheap, safe for concurrent use
// and never block. They receive no token and no payload.
type Tracer interface {
	// Handshake starts the handshake of the upgrade request r. The context
	// it returns (derived from r.Context()) replaces the request's for the
	// rest of the handshake and is the one the connection's handlers derive
	// from (see Options.ConnContext), so that their spans belong to the
	// handshake's trace. end receives nil once the connection is upgraded,
	// or the refusal (a *protocol.Refusal) or error that ended it.
	Handshake(r *http.Request) (ctx context.Context, end func(err error))
	// Message starts the handling of one message of a connection, for
	// event, before the middleware and the handler run; ctx is the
	// handler's context (the connection's, with the handler deadline) and
	// the one returned is what the handler receives. end receives the
	// handler's error when it returns, nil on success.
	Message(ctx context.Context, event string) (context.Context, func(err error))
	// Publish starts a broadcast of event handed to the broker on topic
	// (a room's, a user's or every node's). carrier travels with the
	// message to every node that delivers it, for Deliver: the trace
	// context, opaque to the hub, at most MaxTraceCarrier bytes (a longer
	// one is left out). end receives the broker's error.
	Publish(ctx context.Context, topic, event string) (ctx2 context.Context, carrier []byte, end func(err error))
	// Deliver starts the delivery of a broadcast to this node's recipients,
	// with the carrier the publishing node's Publish returned (empty when
	// it had no tracer). end receives how many connections the message was
	// queued to.
	Deliver(carrier []byte, topic, event string) (end func(recipients int))
}

// MaxTraceCarrier bounds the carrier a Tracer's Publish may send along
// with a broadcast, and what a node accepts from another: a W3C
// traceparent and a full tracestate fit.
const MaxTraceCarrier = 1024

// NopTracer implements Tracer and records nothing. It is the default.
type NopTracer struct{}

var _ Tracer = NopTracer{}

func nopEnd(error)      {}
func nopDeliverEnd(int) {}

// Handshake returns r's context.
func (NopTracer) Handshake(r *http.Request) (context.Context, func(error)) {
	return r.Context(), nopEnd
}

// Message returns ctx.
func (NopTracer) Message(ctx context.Context, _ string) (context.Context, func(error)) {
	return ctx, nopEnd
}

// Publish returns ctx and no carrier.
func (NopTracer) Publish(ctx context.Context, _, _ string) (context.Context, []byte, func(error)) {
	return ctx, nil, nopEnd
}

// Deliver does nothing.
func (NopTracer) Deliver([]byte, string, string) func(int) { return nopDeliverEnd }
