// Package sanitize cleans HTML out of the string fields that inbound message
// types declare, with bluemonday policies.
//
// A field opts in with a struct tag: `sanitize:"html"` applies the
// Sanitizer's default policy (bluemonday's strict policy unless configured:
// every tag is removed and <>&'" are escaped as entities, so the result is
// safe to insert into HTML as text), and `sanitize:"ugc"` applies
// bluemonday's user-generated-content policy, which keeps safe formatting such
// as <b> and <a href="https://..."> and drops scripts, event handlers and
// javascript: links. Untagged fields are never touched. Nested structs,
// pointers to structs and slices of structs are walked to reach their own
// tagged fields.
//
// The smallest use:
//
//	type MessageSend struct {
//		ConversationID string `json:"conversationId"`
//		Content        string `json:"content" sanitize:"html"`
//	}
//
//	s := sanitize.New(sanitize.Options{})
//	msg := &MessageSend{Content: `hi<script>alert(1)</script>`}
//	if err := s.Struct(msg); err != nil {
//		return err
//	}
//	// msg.Content == "hi"
//
// A string without any of <>&'" (or a carriage return, which the HTML parser
// would rewrite) is returned as is without allocating, so the common plain
// chat message costs a scan, not a parse.
package sanitize
