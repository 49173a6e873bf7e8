package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

type (
	question struct {
		Q string `json:"q" validate:"required,max=20"`
	}
	answered struct {
		Answer json.RawMessage `json:"answer"`
		Err    string          `json:"err,omitempty"`
	}
)

// askHandlers registers on h: "ask", which asks its client the question
// "question" with the input and answers with the client's answer (or the
// EmitWithAck error's text); "ask-briefly", the same within 50 ms; and
// "ask-later", which asks from a goroutine of its own after it returned,
// sending the outcome to results.
func askHandlers(h *hub.Hub, results chan<- error) {
	ask := func(ctx hub.Context, in question) (answered, error) {
		a, err := EmitWithAck(ctx, "question", in)
		if err != nil {
			return answered{Err: err.Error()}, nil
		}
		return answered{Answer: a}, nil
	}
	hub.Handle(h, "ask", ask)
	hub.Handle(h, "ask-briefly", func(ctx hub.Context, in question) (answered, error) {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return ask(ctx.WithContext(short), in)
	})
	hub.Handle(h, "ask-binary", func(ctx hub.Context, in question) (answered, error) {
		b, err := NewBinary(map[string]any{"q": in.Q, "blob": []byte("bytes!")})
		if err != nil {
			return answered{}, err
		}
		a, err := EmitWithAck(ctx, "question", b)
		if err != nil {
			return answered{Err: err.Error()}, nil
		}
		return answered{Answer: a}, nil
	})
	hub.Handle(h, "ask-later", func(ctx hub.Context, in question) (struct{}, error) {
		later, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
		go func() {
			defer cancel()
			_, err := EmitWithAck(ctx.WithContext(later), "question", in)
			results <- err
		}()
		return struct{}{}, nil
	})
}

// The server asks the client with EmitWithAck and gets its answer, in
// whichever namespace, over WebSocket or polling, with binary both ways;
// the client's other messages are handled while the server waits.
func TestEmitWithAck(t *testing.T) {
	e := newEnv(t, nil, nil)
	askHandlers(e.main, nil)
	askHandlers(e.notif, nil)
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)
	c.connect("/notifications", `{"token":"alice"}`)
	steps := []struct {
		name string
		send []string // "bin:" frames are binary
		want []string
	}{
		{"the_answer_returns_to_the_handler",
			[]string{`421["ask",{"q":"sure?"}]`},
			[]string{`420["question",{"q":"sure?"}]`}},
		{"other_messages_queue_while_the_server_waits_and_follow_in_order",
			[]string{`422["echo",{"text":"meanwhile"}]`, `430[{"ok":true},"ignored"]`},
			[]string{`431[{"answer":{"ok":true}}]`, `432[{"text":"meanwhile"}]`}},
		{"an_answer_without_argument_is_null",
			[]string{`423["ask",{"q":"empty"}]`},
			[]string{`421["question",{"q":"empty"}]`}},
		{"ack_ids_follow_each_other",
			[]string{`431[]`},
			[]string{`433[{"answer":null}]`}},
		{"each_namespace_answers_its_own",
			[]string{`42/notifications,4["ask",{"q":"n"}]`},
			[]string{`42/notifications,2["question",{"q":"n"}]`}},
		{"an_ack_from_another_namespace_is_refused",
			[]string{`432["nope"]`},
			[]string{`42["error",{"code":"INVALID_MESSAGE","message":"invalid message"}]`}},
		{"the_right_namespace_answers",
			[]string{`43/notifications,2["yes"]`},
			[]string{`43/notifications,4[{"answer":"yes"}]`}},
		{"binary_both_ways",
			[]string{`425["ask-binary",{"q":"b"}]`},
			[]string{`451-3["question",{"blob":{"_placeholder":true,"num":0},"q":"b"}]`, "bin:bytes!"}},
		{"binary_answer_arrives_in_base64",
			[]string{`461-3[{"_placeholder":true,"num":0}]`, "bin:\x01\x02\x03"},
			[]string{`435[{"answer":"AQID"}]`}},
		{"an_ack_never_asked_for_is_refused",
			[]string{`4399["x"]`},
			[]string{`42["error",{"code":"INVALID_MESSAGE","message":"invalid message"}]`}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c.t = t
			for _, m := range s.send {
				if b, ok := strings.CutPrefix(m, "bin:"); ok {
					c.sendBinary([]byte(b))
				} else {
					c.send(m)
				}
			}
			for _, w := range s.want {
				c.expect(w)
			}
		})
	}
}

// Over polling, the ACK arrives in a POST while the handler waits.
func TestEmitWithAckOverPolling(t *testing.T) {
	e := newEnv(t, nil, nil)
	askHandlers(e.main, nil)
	p := e.poll(e.header())
	p.post(`40{"token":"alice"}`)
	if _, got := p.get(); len(got) != 1 || !strings.HasPrefix(got[0], `40{"sid":`) {
		t.Fatalf("CONNECT: %q", got)
	}
	if status := p.post(`427["ask",{"q":"poll?"}]`); status != 200 {
		t.Fatalf("POST: %d", status)
	}
	if _, got := p.get(); len(got) != 1 || got[0] != `420["question",{"q":"poll?"}]` {
		t.Fatalf("question: %q", got)
	}
	p.post(`430["by polling"]`)
	if _, got := p.get(); len(got) != 1 || got[0] != `437[{"answer":"by polling"}]` {
		t.Fatalf("answer: %q", got)
	}
}

// EmitWithAck gives up when its context ends, when the client leaves, and
// past MaxPendingAcks; a late answer is dropped without a word.
func TestEmitWithAckFailures(t *testing.T) {
	results := make(chan error, 4)
	e := newEnv(t, func(o *Options) { o.MaxPendingAcks = 1 }, nil)
	askHandlers(e.main, results)
	result := func(t *testing.T) error {
		t.Helper()
		select {
		case err := <-results:
			return err
		case <-time.After(wait):
			t.Fatal("EmitWithAck did not return")
			return nil
		}
	}
	c := e.dial(e.header())
	c.connect("/", `{"token":"alice"}`)

	t.Run("context_deadline", func(t *testing.T) {
		c.t = t
		c.send(`421["ask-briefly",{"q":"fast"}]`)
		c.expect(`420["question",{"q":"fast"}]`)
		got := c.expect(`431[{"answer":null,"err":"socketio: no acknowledgement of \"question\": context deadline exceeded"}]`)
		_ = got
	})
	t.Run("late_answer_is_dropped", func(t *testing.T) {
		c.t = t
		c.send(`430["too late"]`)
		c.send(`422["echo",{"text":"next"}]`)
		c.expect(`432[{"text":"next"}]`)
	})
	t.Run("max_pending_acks", func(t *testing.T) {
		c.t = t
		c.send(`42["ask-later",{"q":"held"}]`)
		c.expect(`421["question",{"q":"held"}]`)
		c.send(`423["ask",{"q":"one too many"}]`)
		c.expect(`433[{"answer":null,"err":"socketio: too many acknowledgements awaited"}]`)
		c.send(`431["released"]`)
		if err := result(t); err != nil {
			t.Fatalf("the held emit: %v", err)
		}
	})
	t.Run("namespace_disconnect", func(t *testing.T) {
		c.t = t
		c.send(`42["ask-later",{"q":"bye?"}]`)
		c.expect(`422["question",{"q":"bye?"}]`)
		c.send(`41`)
		if err := result(t); !errors.Is(err, ErrDisconnected) {
			t.Fatalf("after DISCONNECT: %v", err)
		}
	})
	t.Run("session_closed", func(t *testing.T) {
		d := e.dial(e.header())
		d.t = t
		d.connect("/", `{"token":"bob"}`)
		d.send(`42["ask-later",{"q":"bye?"}]`)
		d.expect(`420["question",{"q":"bye?"}]`)
		_ = d.c.CloseNow()
		if err := result(t); !errors.Is(err, ErrDisconnected) {
			t.Fatalf("after the session closed: %v", err)
		}
	})
}

// EmitWithAck needs a handler's context of a Socket.IO connection.
func TestEmitWithAckNeedsASocketIOHandler(t *testing.T) {
	if _, err := EmitWithAck(hub.Context{}, "x", nil); !errors.Is(err, ErrNotSocketIO) {
		t.Fatalf("zero Context: %v", err)
	}
	if _, err := New(Options{Namespaces: map[string]*hub.Hub{"/": newTestHub(t, nil, nil)}, MaxPendingAcks: -1}); err == nil {
		t.Fatal("a negative MaxPendingAcks was accepted")
	}
}
