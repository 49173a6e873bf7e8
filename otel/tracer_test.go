package otel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testutil"
	wsotel "github.com/wsgate/wsgate/otel"
)

var secret = []byte("otel-test-secret-of-at-least-32-bytes!!")

// node is one hub on a shared bus, served over loopback behind a
// middleware that starts the request's span, as otelhttp would.
type node struct {
	hub *hub.Hub
	srv *httptest.Server
	rec *tracetest.SpanRecorder
}

func newNode(t *testing.T, bus *memory.Bus) *node {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Options{
		Authenticator: authn,
		Broker:        bus.Broker(),
		Tracer:        wsotel.New(wsotel.Options{TracerProvider: tp}),
	})
	if err != nil {
		t.Fatal(err)
	}
	hub.Handle(h, "say", func(ctx hub.Context, in struct {
		To string `json:"to" validate:"required"`
	}) (struct{}, error) {
		return struct{}{}, ctx.Hub().ToUser(ctx, in.To, "said", nil)
	})
	hub.Handle(h, "deny", func(hub.Context, struct{}) (struct{}, error) {
		return struct{}{}, hub.Errorf(hub.CodeForbidden, "no")
	})
	requests := tp.Tracer("test")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := requests.Start(r.Context(), "GET /ws", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		h.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	return &node{hub: h, srv: srv, rec: rec}
}

func token(t *testing.T, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial connects as user and reads the welcome; header adds to the
// handshake.
func (n *node) dial(t *testing.T, user string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{"Origin": {n.srv.URL}}
	if user != "" {
		h.Set("Authorization", "Bearer "+token(t, user))
	}
	for k, v := range header {
		h[k] = v
	}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.srv.URL, "http"), &websocket.DialOptions{
		HTTPHeader: h, Subprotocols: []string{"wsgate.v1"},
	})
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	read(t, c) // the welcome
	return c, resp, nil
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func write(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// ended returns the ended span named name, waiting for it; it fails if
// there are several.
func (n *node) ended(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	testutil.Eventually(t, 5*time.Second, "a span named "+name, func() bool {
		found = found[:0]
		for _, s := range n.rec.Ended() {
			if s.Name() == name {
				found = append(found, s)
			}
		}
		return len(found) > 0
	})
	if len(found) > 1 {
		t.Fatalf("%d spans named %s", len(found), name)
	}
	return found[0]
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestTracing(t *testing.T) {
	t.Run("handshake_is_a_child_of_the_upgrade_request", func(t *testing.T) {
		n := newNode(t, memory.NewBus())
		if _, _, err := n.dial(t, "alice", nil); err != nil {
			t.Fatal(err)
		}
		req, hs := n.ended(t, "GET /ws"), n.ended(t, wsotel.SpanHandshake)
		if hs.Parent().SpanID() != req.SpanContext().SpanID() || hs.SpanContext().TraceID() != req.SpanContext().TraceID() {
			t.Fatalf("handshake parent %v, want the request span %v", hs.Parent(), req.SpanContext())
		}
		if hs.Status().Code == codes.Error {
			t.Fatalf("an upgraded handshake has status %v", hs.Status())
		}
	})

	t.Run("refused_handshake_records_the_refusal", func(t *testing.T) {
		n := newNode(t, memory.NewBus())
		if _, resp, err := n.dial(t, "", nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial without a token: %v", err)
		}
		hs := n.ended(t, wsotel.SpanHandshake)
		if hs.Status().Code != codes.Error || attr(hs, wsotel.AttrCode).AsString() != "UNAUTHORIZED" {
			t.Fatalf("status %v, code %q", hs.Status(), attr(hs, wsotel.AttrCode).AsString())
		}
	})

	t.Run("traceparent_header_parents_a_handshake_without_a_request_span", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		tr := wsotel.New(wsotel.Options{TracerProvider: tp})
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		_, end := tr.Handshake(r)
		end(nil)
		s := rec.Ended()[0]
		if s.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !s.Parent().IsRemote() {
			t.Fatalf("parent %v, want the header's remote span", s.Parent())
		}
	})

	t.Run("message_span_is_a_child_of_the_handshake", func(t *testing.T) {
		n := newNode(t, memory.NewBus())
		c, _, err := n.dial(t, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		write(t, c, `{"type":"event","id":1,"event":"deny"}`)
		if got := read(t, c); !strings.Contains(got, `"FORBIDDEN"`) {
			t.Fatalf("got %s", got)
		}
		hs, msg := n.ended(t, wsotel.SpanHandshake), n.ended(t, wsotel.SpanMessage)
		if msg.Parent().SpanID() != hs.SpanContext().SpanID() || msg.SpanContext().TraceID() != hs.SpanContext().TraceID() {
			t.Fatalf("message parent %v, want the handshake %v", msg.Parent(), hs.SpanContext())
		}
		if attr(msg, wsotel.AttrEvent).AsString() != "deny" || attr(msg, wsotel.AttrCode).AsString() != "FORBIDDEN" || msg.Status().Code != codes.Error {
			t.Fatalf("message span attributes %v, status %v", msg.Attributes(), msg.Status())
		}
	})

	t.Run("delivery_on_another_node_links_to_the_publish", func(t *testing.T) {
		bus := memory.NewBus()
		a, b := newNode(t, bus), newNode(t, bus)
		sender, _, err := a.dial(t, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		listener, _, err := b.dial(t, "bob", nil)
		if err != nil {
			t.Fatal(err)
		}
		write(t, sender, `{"type":"event","id":1,"event":"say","data":{"to":"bob"}}`)
		if got := read(t, sender); !strings.Contains(got, `"ack"`) {
			t.Fatalf("sender got %s", got)
		}
		if got := read(t, listener); !strings.Contains(got, `"said"`) {
			t.Fatalf("listener got %s", got)
		}
		msg, pub := a.ended(t, wsotel.SpanMessage), a.ended(t, wsotel.SpanPublish)
		if pub.Parent().SpanID() != msg.SpanContext().SpanID() || pub.SpanKind() != trace.SpanKindProducer {
			t.Fatalf("publish parent %v kind %v, want the message span %v", pub.Parent(), pub.SpanKind(), msg.SpanContext())
		}
		del := b.ended(t, wsotel.SpanDeliver)
		links := del.Links()
		if len(links) != 1 || links[0].SpanContext.SpanID() != pub.SpanContext().SpanID() ||
			links[0].SpanContext.TraceID() != pub.SpanContext().TraceID() {
			t.Fatalf("delivery links %v, want the publish span %v", links, pub.SpanContext())
		}
		if attr(del, wsotel.AttrRecipients).AsInt64() != 1 || attr(del, wsotel.AttrTopic).AsString() != "user:bob" {
			t.Fatalf("delivery attributes %v", del.Attributes())
		}
	})

	t.Run("broker_error_marks_the_publish_span", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		tr := wsotel.New(wsotel.Options{TracerProvider: tp})
		_, carrier, end := tr.Publish(context.Background(), "room:r", "e")
		if !strings.HasPrefix(string(carrier), "traceparent=00-") {
			t.Fatalf("carrier %q, want a W3C traceparent", carrier)
		}
		end(errors.New("broker down"))
		if s := rec.Ended()[0]; s.Status().Code != codes.Error {
			t.Fatalf("status %v", s.Status())
		}
	})

	t.Run("garbage_carrier_gives_an_unlinked_delivery", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		tr := wsotel.New(wsotel.Options{TracerProvider: tp})
		tr.Deliver([]byte("traceparent=zz\n=\nnonsense"), "room:r", "e")(3)
		s := rec.Ended()[0]
		if len(s.Links()) != 0 || attr(s, wsotel.AttrRecipients).AsInt64() != 3 {
			t.Fatalf("links %v, attributes %v", s.Links(), s.Attributes())
		}
	})
}
