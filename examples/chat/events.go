package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/room"
)

// Room kind of a conversation: "conversation:{uuid}".
const conversationKind = "conversation"

func conversationRoom(id string) string { return conversationKind + ":" + id }

// Seeded demo data. The ids are fixed so that the page, the tests and a
// reader following along with curl all name the same conversations.
const (
	demoConversation    = "6f1c2a7e-3b4d-4c5e-8f90-a1b2c3d4e5f6"
	privateConversation = "0d9e8f7a-6b5c-4d3e-9f2a-1b0c9d8e7f6a"
)

// conversation is one chat and who takes part in it.
type conversation struct {
	ID           string   `json:"id"`
	Title        string   `json:"title"`
	Participants []string `json:"participants"`
}

// directory is the example's participants store. It is filled once by
// newDirectory and only read afterwards, so it needs no lock; a real
// deployment asks its database here, which is why every look-up takes a
// context.
type directory struct {
	users []string
	convs []conversation
}

func newDirectory() *directory {
	return &directory{
		users: []string{"alice", "bob", "carol"},
		convs: []conversation{
			{ID: demoConversation, Title: "Alice & Bob", Participants: []string{"alice", "bob"}},
			// Alice is not in this one: joining it from her page shows a refusal.
			{ID: privateConversation, Title: "Bob & Carol (private)", Participants: []string{"bob", "carol"}},
		},
	}
}

func (d *directory) isUser(name string) bool {
	for _, u := range d.users {
		if u == name {
			return true
		}
	}
	return false
}

func (d *directory) isParticipant(_ context.Context, convID, user string) bool {
	for _, c := range d.convs {
		if c.ID == convID {
			for _, p := range c.Participants {
				if p == user {
					return true
				}
			}
			return false
		}
	}
	return false
}

// canJoinConversation is the room rule for the "conversation" kind: only
// participants may listen in.
func (d *directory) canJoinConversation(ctx context.Context, id auth.Identity, r room.Name) (bool, error) {
	return d.isParticipant(ctx, r.Arg, id.UserID), nil
}

// Inbound events. The hub decodes them with unknown fields refused,
// validates the `validate` tags and cleans the `sanitize` fields before a
// handler runs, so handlers only ever see well-formed input.
type (
	messageSend struct {
		ConversationID string `json:"conversationId" validate:"required,uuid"`
		Content        string `json:"content" validate:"required,max=10000" sanitize:"html"`
	}
	messageRead struct {
		ConversationID string `json:"conversationId" validate:"required,uuid"`
		MessageID      string `json:"messageId" validate:"required,uuid"`
	}
	typingChange struct {
		ConversationID string `json:"conversationId" validate:"required,uuid"`
	}
)

// Outbound events and replies.
type (
	messageNew struct {
		ID             string    `json:"id"`
		ConversationID string    `json:"conversationId"`
		SenderID       string    `json:"senderId"`
		Content        string    `json:"content"`
		SentAt         time.Time `json:"sentAt"`
	}
	sendReply struct {
		ID     string    `json:"id"`
		SentAt time.Time `json:"sentAt"`
	}
	readReceipt struct {
		ConversationID string    `json:"conversationId"`
		MessageID      string    `json:"messageId"`
		UserID         string    `json:"userId"`
		ReadAt         time.Time `json:"readAt"`
	}
	typingNotice struct {
		UserID         string `json:"userId"`
		ConversationID string `json:"conversationId"`
		Typing         bool   `json:"typing"`
	}
)

// typingLimit is tighter than the hub's default (10/s): a client needs one
// typing:start every few seconds while the user types, and a flood of them
// would fan out to every participant.
var typingLimit = hub.Limit{Rate: hub.Every(500 * time.Millisecond), Burst: 4}

// registerEvents wires the chat events into h.
func registerEvents(h *hub.Hub, dir *directory) {
	hub.Handle(h, "message:send", func(ctx hub.Context, in messageSend) (sendReply, error) {
		return sendMessage(ctx, dir, in)
	})
	hub.Handle(h, "message:read", func(ctx hub.Context, in messageRead) (struct{}, error) {
		if err := requireParticipant(ctx, dir, in.ConversationID); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, ctx.Broadcast(conversationRoom(in.ConversationID), "message:read", readReceipt{
			ConversationID: in.ConversationID,
			MessageID:      in.MessageID,
			UserID:         ctx.Identity().UserID,
			ReadAt:         time.Now().UTC(),
		}, hub.Except(ctx.ConnID()))
	})
	for event, typing := range map[string]bool{"typing:start": true, "typing:stop": false} {
		hub.Handle(h, event, func(ctx hub.Context, in typingChange) (struct{}, error) {
			if err := requireParticipant(ctx, dir, in.ConversationID); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, ctx.Broadcast(conversationRoom(in.ConversationID), "typing", typingNotice{
				UserID:         ctx.Identity().UserID,
				ConversationID: in.ConversationID,
				Typing:         typing,
			}, hub.Except(ctx.ConnID()), hub.Transient()) // stale at once: not kept for recovery
		}, hub.WithRateLimit(typingLimit))
	}
}

// sendMessage broadcasts a new message to the whole conversation room, the
// sending connection included: the sender's own tab renders the message
// from the broadcast too, so every tab shows the same id, timestamp and
// sanitized text.
func sendMessage(ctx hub.Context, dir *directory, in messageSend) (sendReply, error) {
	if err := requireParticipant(ctx, dir, in.ConversationID); err != nil {
		return sendReply{}, err
	}
	// Validation ran on the raw text; markup-only content such as
	// "<script>…</script>" is empty once sanitized and would be a blank
	// message.
	if strings.TrimSpace(in.Content) == "" {
		return sendReply{}, hub.Errorf(hub.CodeInvalidMessage, "content is empty once HTML is removed")
	}
	msg := messageNew{
		ID:             newUUID(),
		ConversationID: in.ConversationID,
		SenderID:       ctx.Identity().UserID,
		Content:        in.Content,
		SentAt:         time.Now().UTC(),
	}
	if err := ctx.Broadcast(conversationRoom(in.ConversationID), "message:new", msg); err != nil {
		return sendReply{}, fmt.Errorf("broadcast message: %w", err)
	}
	return sendReply{ID: msg.ID, SentAt: msg.SentAt}, nil
}

// requireParticipant refuses events about a conversation the user is not
// in: being able to name a conversation must not be enough to write to it.
func requireParticipant(ctx hub.Context, dir *directory, convID string) error {
	if dir.isParticipant(ctx, convID, ctx.Identity().UserID) {
		return nil
	}
	ctx.Logger().Warn("event_forbidden", slog.String("conversation", convID))
	return hub.Errorf(hub.CodeForbidden, "not a participant of this conversation")
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
