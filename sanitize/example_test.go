package sanitize_test

import (
	"fmt"

	"github.com/wsgate/wsgate/sanitize"
)

func ExampleSanitizer_Struct() {
	type MessageSend struct {
		ConversationID string   `json:"conversationId"`           // untagged: never touched
		Content        string   `json:"content" sanitize:"html"`  // strict: all tags removed
		Signature      string   `json:"signature" sanitize:"ugc"` // safe formatting kept
		Tags           []string `json:"tags" sanitize:"html"`
	}
	s := sanitize.New(sanitize.Options{})
	msg := &MessageSend{
		ConversationID: "c1",
		Content:        `hi<script>alert(1)</script> <img src=x onerror=alert(2)>`,
		Signature:      `<b>Ana</b> <a href="javascript:alert(3)">site</a>`,
		Tags:           []string{"<i>urgent</i>", "fish & chips"},
	}
	if err := s.Struct(msg); err != nil {
		panic(err)
	}
	fmt.Printf("%q\n%q\n%q\n", msg.Content, msg.Signature, msg.Tags)
	// Output:
	// "hi "
	// "<b>Ana</b> site"
	// ["urgent" "fish &amp; chips"]
}

func ExampleUGC() {
	fmt.Println(sanitize.UGC().String(`<p onclick="steal()">Read <a href="https://example.com">this</a></p>`))
	// Output:
	// <p>Read <a href="https://example.com" rel="nofollow">this</a></p>
}
