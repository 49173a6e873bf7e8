package main

import (
	"testing"
)

// A participant who was offline (a network switch, a deploy) gets the
// messages sent meanwhile when the page rejoins with the position of the
// last one it saw; typing notices are not kept.
func TestConversationHistoryRecoversMissedMessages(t *testing.T) {
	e := startServer(t, nil)
	room := conversationRoom(demoConversation)
	alice, bob := e.connect(t, "alice"), e.connect(t, "bob")
	alice.mustJoin(room)
	bob.mustJoin(room)
	send := func(content string) {
		t.Helper()
		if f := alice.event("message:send", map[string]any{"conversationId": demoConversation, "content": content}); f.Type != "ack" {
			t.Fatalf("message:send: %s %s", f.Code, f.Message)
		}
	}
	send("before")
	seen := bob.next(func(f frame) bool { return f.Event == "message:new" })
	if seen.Offset == nil || seen.Epoch == "" {
		t.Fatalf("a message of the conversation without a position: %+v", seen)
	}
	bob.ws.CloseNow()

	if f := alice.event("typing:start", map[string]any{"conversationId": demoConversation}); f.Type != "ack" {
		t.Fatalf("typing:start: %s %s", f.Code, f.Message)
	}
	send("while bob was away")

	back := e.connect(t, "bob")
	ack := back.call(map[string]any{"type": "join", "room": room,
		"data": map[string]any{"since": map[string]any{"offset": *seen.Offset, "epoch": seen.Epoch}}})
	var r struct {
		Recovered bool `json:"recovered"`
		Missed    int  `json:"missed"`
	}
	decode(t, ack.Data, &r)
	if ack.Type != "ack" || !r.Recovered || r.Missed != 1 {
		t.Fatalf("rejoin answered %+v (%+v), want recovered with the one message missed", ack, r)
	}
	var m struct {
		Content string `json:"content"`
	}
	decode(t, back.next(func(f frame) bool { return f.Type == "event" }).Data, &m)
	if m.Content != "while bob was away" {
		t.Fatalf("recovered %q", m.Content)
	}
}
