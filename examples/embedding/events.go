package main

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// Comment is what a client sends to comment on a project. The hub decodes
// it with unknown fields refused, checks the validate tags and strips the
// HTML of Text before the handler runs.
type Comment struct {
	ProjectID string `json:"projectId" validate:"required,uuid"`
	Text      string `json:"text" validate:"required,max=2000" sanitize:"html"`
}

// CommentAck is the ack's data.
type CommentAck struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// CommentEvent is what the project's other members receive.
type CommentEvent struct {
	ID        string    `json:"id"`
	ProjectID string    `json:"projectId"`
	Author    string    `json:"author"`
	Text      string    `json:"text"`
	At        time.Time `json:"at"`
}

func registerEvents(h *hub.Hub) {
	hub.Handle(h, "comment", func(ctx hub.Context, in Comment) (CommentAck, error) {
		// The project id is the client's word: the connection must be in
		// its room, which only members may join.
		name := projectRoom(in.ProjectID)
		if !ctx.InRoom(name) {
			return CommentAck{}, hub.Errorf(hub.CodeForbidden, "join the project first")
		}
		ev := CommentEvent{ID: newID(), ProjectID: in.ProjectID, Author: ctx.Identity().UserID, Text: in.Text, At: time.Now().UTC()}
		if err := ctx.Broadcast(name, "comment", ev, hub.Except(ctx.ConnID())); err != nil {
			return CommentAck{}, err // INTERNAL to the client, logged with the cause
		}
		return CommentAck{ID: ev.ID, At: ev.At}, nil
	}, hub.WithRateLimit(hub.Limit{Rate: 2, Burst: 10}))
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
