package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/socketio"
)

type (
	part struct {
		Data []byte `json:"data"`
	}
	uploadIn struct {
		Name  string `json:"name" validate:"required,max=64"`
		Data  []byte `json:"data"`
		Parts []part `json:"parts" validate:"max=8"`
	}
	uploadOut struct {
		Name  string `json:"name"`
		Size  int    `json:"size"`
		Data  []byte `json:"data"`
		Parts []part `json:"parts"`
	}
	slowIn struct {
		MS int `json:"ms" validate:"min=0,max=3000"`
	}
	questionIn struct {
		Q string `json:"q" validate:"required,max=64"`
	}
	answerOut struct {
		Answer json.RawMessage `json:"answer,omitempty"`
		Err    string          `json:"err,omitempty"`
	}
	streamIn struct {
		Count   int `json:"count" validate:"min=1,max=5000"`
		EveryMS int `json:"everyMs" validate:"min=1,max=100"`
	}
	tick struct {
		Seq int `json:"seq"`
	}
	publishIn struct {
		Room string `json:"room" validate:"required,max=64"`
		From int    `json:"from"`
		To   int    `json:"to"`
	}
	news struct {
		N int `json:"n"`
	}
)

// maxPublish bounds the events one publish sends.
const maxPublish = 1000

func (f *fixture) handlers() {
	hub.Handle(f.main, "echo", func(_ hub.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil })
	hub.Handle(f.main, "upload", func(_ hub.Context, in uploadIn) (socketio.Binary, error) {
		rev := slices.Clone(in.Data)
		slices.Reverse(rev)
		return socketio.NewBinary(uploadOut{Name: in.Name, Size: len(in.Data), Data: rev, Parts: in.Parts})
	})
	hub.Handle(f.main, "slow", func(ctx hub.Context, in slowIn) (slowIn, error) {
		t := time.NewTimer(time.Duration(in.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return in, nil
		case <-ctx.Done():
			return slowIn{}, ctx.Err()
		}
	})
	hub.Handle(f.main, "ask", func(ctx hub.Context, in questionIn) (answerOut, error) {
		return answer(socketio.EmitWithAck(ctx, "question", in))
	})
	hub.Handle(f.main, "ask-binary", func(ctx hub.Context, in questionIn) (answerOut, error) {
		q, err := socketio.NewBinary(map[string]any{"q": in.Q, "blob": []byte("bytes!")})
		if err != nil {
			return answerOut{}, err
		}
		return answer(socketio.EmitWithAck(ctx, "question", q))
	})
	hub.Handle(f.main, "stream", f.stream)
	hub.Handle(f.main, "publish", publish)
	hub.Handle(f.notif, "whoami", func(ctx hub.Context, _ struct{}) (map[string]string, error) {
		return map[string]string{"namespace": "/notifications", "user": ctx.Identity().UserID}, nil
	})
}

func answer(a json.RawMessage, err error) (answerOut, error) {
	if err != nil {
		return answerOut{Err: err.Error()}, nil
	}
	return answerOut{Answer: a}, nil
}

// stream starts sending in.Count ticks to the caller's user, one every
// in.EveryMS milliseconds, through the hub's broadcast path; it stops early
// when the hub refuses one (shutting down) or its deadline passes.
func (f *fixture) stream(ctx hub.Context, in streamIn) (map[string]bool, error) {
	select {
	case f.streams <- struct{}{}:
	default:
		return nil, hub.Errorf(hub.CodeRateLimited, "too many streams")
	}
	every := time.Duration(in.EveryMS) * time.Millisecond
	user := ctx.Identity().UserID
	h := ctx.Hub()
	go func() {
		defer func() { <-f.streams }()
		sctx, cancel := context.WithTimeout(context.Background(), time.Duration(in.Count)*every+10*time.Second)
		defer cancel()
		t := time.NewTicker(every)
		defer t.Stop()
		for seq := range in.Count {
			if err := h.ToUser(sctx, user, "tick", tick{Seq: seq}); err != nil {
				return
			}
			select {
			case <-t.C:
			case <-sctx.Done():
				return
			}
		}
	}()
	return map[string]bool{"started": true}, nil
}

// publish broadcasts "news" {n} to in.Room for n from in.From to in.To,
// one after the other, and answers once all were published: a test that
// waits for the answer knows every one of them is in the room's history.
func publish(ctx hub.Context, in publishIn) (map[string]int, error) {
	if !strings.HasPrefix(in.Room, "news:") || in.To < in.From || in.To-in.From >= maxPublish {
		return nil, hub.Errorf(hub.CodeInvalidMessage, "publish: a news room and from ≤ to, at most %d", maxPublish)
	}
	h := ctx.Hub()
	for n := in.From; n <= in.To; n++ {
		if err := h.Broadcast(ctx, in.Room, "news", news{N: n}); err != nil {
			return nil, err
		}
	}
	return map[string]int{"published": in.To - in.From + 1}, nil
}
