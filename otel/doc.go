// Package otel traces a wsgate hub with OpenTelemetry: it implements
// hub.Tracer, so that the hub itself depends on no tracing library. It is
// a module of its own (github.com/wsgate/wsgate/otel), so that services
// that do not trace do not pull OpenTelemetry in.
//
// Four kinds of span:
//
//   - "wsgate.handshake": the upgrade request, from its arrival at the
//     hub to the upgrade or the refusal; a child of the request's span
//     (otelhttp or your own middleware put it in r.Context()), or of a
//     traceparent header when the request has no span.
//   - "wsgate.message": each handled message, middleware and handler
//     included; a child of its connection's handshake span, so a
//     connection's messages share one trace. The handler's ctx carries it:
//     spans the handler starts are its children.
//   - "wsgate.publish": each broadcast handed to the broker (Broadcast,
//     ToUser, ToTenant, ToAll), a child of whatever span the caller's ctx
//     holds; its W3C trace context travels with the message to every node.
//   - "wsgate.deliver": the fan-out of a broadcast to one node's local
//     connections, linked to the publish span on the node that published
//     it, with the number of recipients.
//
// The smallest use:
//
//	import wsotel "github.com/wsgate/wsgate/otel"
//
//	h, err := hub.New(hub.Options{
//		Authenticator: authn,
//		Tracer:        wsotel.New(wsotel.Options{}), // the global TracerProvider
//	})
//
// Spans never hold tokens or payloads: the event name, the topic, the
// refusal or error code, the recipient count.
package otel
