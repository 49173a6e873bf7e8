package hub_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/adapter/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// recorder is a Tracer that writes down what the hub told it. Its
// contexts carry the name of the span they belong to, and Publish's
// carrier is that name, so a test can follow the chain.
type recorder struct {
	mu         sync.Mutex
	handshakes []error
	messages   []traced
	publishes  []traced
	deliveries []delivery
}

type traced struct {
	name, parent string
	err          error
	ended        bool
}

type delivery struct {
	carrier, topic, event string
	recipients            int
}

type spanKey struct{}

func spanOf(ctx context.Context) string { s, _ := ctx.Value(spanKey{}).(string); return s }

func (r *recorder) Handshake(req *http.Request) (context.Context, func(error)) {
	return context.WithValue(req.Context(), spanKey{}, "handshake"), func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.handshakes = append(r.handshakes, err)
	}
}

func (r *recorder) Message(ctx context.Context, event string) (context.Context, func(error)) {
	return r.start(&r.messages, ctx, "message:"+event)
}

func (r *recorder) Publish(ctx context.Context, topic, event string) (context.Context, []byte, func(error)) {
	name := "publish:" + topic + ":" + event
	ctx, end := r.start(&r.publishes, ctx, name)
	return ctx, []byte(name), end
}

func (r *recorder) start(list *[]traced, ctx context.Context, name string) (context.Context, func(error)) {
	r.mu.Lock()
	i := len(*list)
	*list = append(*list, traced{name: name, parent: spanOf(ctx)})
	r.mu.Unlock()
	return context.WithValue(ctx, spanKey{}, name), func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if (*list)[i].ended {
			panic("ended twice")
		}
		(*list)[i].err, (*list)[i].ended = err, true
	}
}

func (r *recorder) Deliver(carrier []byte, topic, event string) func(int) {
	return func(n int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.deliveries = append(r.deliveries, delivery{string(carrier), topic, event, n})
	}
}

func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{
		handshakes: append([]error(nil), r.handshakes...),
		messages:   append([]traced(nil), r.messages...),
		publishes:  append([]traced(nil), r.publishes...),
		deliveries: append([]delivery(nil), r.deliveries...),
	}
}

// bigCarrier publishes a carrier over MaxTraceCarrier.
type bigCarrier struct{ *recorder }

func (b bigCarrier) Publish(ctx context.Context, topic, event string) (context.Context, []byte, func(error)) {
	ctx, _, end := b.recorder.Publish(ctx, topic, event)
	return ctx, make([]byte, hub.MaxTraceCarrier+1), end
}

type Say struct {
	Room string `json:"room" validate:"required"`
}

func TestTracer(t *testing.T) {
	t.Run("handshake_ends_with_the_upgrade_or_the_refusal", func(t *testing.T) {
		tr := &recorder{}
		e := newEnv(t, func(o *hub.Options) { o.Tracer = tr })
		e.connect(claims{sub: "alice"})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, resp, err := e.dialRaw(ctx, e.header("")); err == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial without token: %v", err)
		}
		// The upgraded handshake's span ends once ServeHTTP returns, which
		// may be after the client saw its welcome: wait for both, in either
		// order.
		eventually(t, "both handshake spans to end", func() bool { return len(tr.snapshot().handshakes) == 2 })
		got := tr.snapshot().handshakes
		if got[0] != nil {
			got[0], got[1] = got[1], got[0]
		}
		if got[0] != nil {
			t.Fatalf("handshakes = %v, want one upgrade (nil) and one refusal", got)
		}
		var rej *protocol.Refusal
		if !errors.As(got[1], &rej) || rej.Code != protocol.CodeUnauthorized {
			t.Fatalf("refused handshake ended with %v, want the 401 refusal", got[1])
		}
	})

	t.Run("handler_runs_in_the_message_span_under_the_handshake", func(t *testing.T) {
		tr := &recorder{}
		e := newEnv(t, func(o *hub.Options) { o.Tracer = tr })
		seen := make(chan string, 1)
		hub.Handle(e.hub, "look", func(ctx hub.Context, _ struct{}) (struct{}, error) {
			seen <- spanOf(ctx)
			return struct{}{}, errors.New("database down")
		})
		c := e.connect(claims{sub: "alice"})
		c.sendRaw(`{"type":"event","id":1,"event":"look"}`)
		if f := c.next(); f.Code != "INTERNAL" {
			t.Fatalf("got %+v", f)
		}
		if span := <-seen; span != "message:look" {
			t.Fatalf("handler ran in span %q, want message:look", span)
		}
		m := tr.snapshot().messages
		if len(m) != 1 || m[0].parent != "handshake" || !m[0].ended || m[0].err == nil {
			t.Fatalf("message spans = %+v, want one, child of the handshake, ended with the handler's error", m)
		}
	})

	t.Run("handler_panic_ends_the_message_span_once", func(t *testing.T) {
		tr := &recorder{}
		e := newEnv(t, func(o *hub.Options) { o.Tracer = tr })
		hub.Handle(e.hub, "boom", func(hub.Context, struct{}) (struct{}, error) { panic("boom") })
		c := e.connect(claims{sub: "alice"})
		c.sendRaw(`{"type":"event","id":1,"event":"boom"}`)
		if f := c.next(); f.Code != "INTERNAL" {
			t.Fatalf("got %+v", f)
		}
		m := tr.snapshot().messages
		if len(m) != 1 || !m[0].ended || m[0].err == nil {
			t.Fatalf("message spans = %+v, want one ended with an error", m)
		}
	})

	t.Run("publish_carrier_reaches_delivery_on_another_node", func(t *testing.T) {
		bus := memory.NewBus()
		trA, trB := &recorder{}, &recorder{}
		a := newEnv(t, func(o *hub.Options) { o.Tracer, o.Broker = trA, bus.Broker() })
		b := newEnv(t, func(o *hub.Options) { o.Tracer, o.Broker = trB, bus.Broker() })
		hub.Handle(a.hub, "say", func(ctx hub.Context, in Say) (struct{}, error) {
			return struct{}{}, ctx.Broadcast(in.Room, "said", nil)
		})
		sender := a.connect(claims{sub: "alice"})
		listener := b.connect(claims{sub: "bob"})
		sender.sendRaw(`{"type":"event","id":1,"event":"say","data":{"room":"user:bob"}}`)
		if f := sender.next(); f.Type != "ack" {
			t.Fatalf("sender got %+v", f)
		}
		if f := listener.next(); f.Event != "said" {
			t.Fatalf("listener got %+v", f)
		}
		p := trA.snapshot().publishes
		if len(p) != 1 || p[0].parent != "message:say" || !p[0].ended || p[0].err != nil {
			t.Fatalf("publishes = %+v, want one inside the message span, ended without error", p)
		}
		want := delivery{carrier: p[0].name, topic: "room:user:bob", event: "said", recipients: 1}
		eventually(t, "delivery on node B", func() bool {
			d := trB.snapshot().deliveries
			return len(d) == 1 && d[0] == want
		})
	})

	t.Run("overlong_carrier_is_left_out_and_the_broadcast_delivered", func(t *testing.T) {
		tr := &recorder{}
		e := newEnv(t, func(o *hub.Options) { o.Tracer = bigCarrier{tr} })
		listener := e.connect(claims{sub: "bob"})
		if err := e.hub.ToUser(context.Background(), "bob", "hi", nil); err != nil {
			t.Fatal(err)
		}
		if f := listener.next(); f.Event != "hi" {
			t.Fatalf("got %+v", f)
		}
		eventually(t, "delivery", func() bool {
			d := tr.snapshot().deliveries
			return len(d) == 1 && d[0].carrier == ""
		})
	})

	t.Run("without_a_tracer_nothing_is_carried", func(t *testing.T) {
		bus := memory.NewBus()
		tr := &recorder{}
		a := newEnv(t, func(o *hub.Options) { o.Broker = bus.Broker() })
		b := newEnv(t, func(o *hub.Options) { o.Tracer, o.Broker = tr, bus.Broker() })
		listener := b.connect(claims{sub: "bob"})
		if err := a.hub.ToUser(context.Background(), "bob", "hi", nil); err != nil {
			t.Fatal(err)
		}
		if f := listener.next(); f.Event != "hi" {
			t.Fatalf("got %+v", f)
		}
		eventually(t, "delivery", func() bool {
			d := tr.snapshot().deliveries
			return len(d) == 1 && d[0].carrier == "" && d[0].recipients == 1
		})
	})
}
