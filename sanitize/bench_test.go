package sanitize

import "testing"

var sink string

// BenchmarkSanitizeFastPath is a typical chat message: no markup, no
// allocation, no parse.
func BenchmarkSanitizeFastPath(b *testing.B) {
	p := Strict()
	in := "See you at the station at 10, bring the tickets please"
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		sink = p.String(in)
	}
}

// BenchmarkSanitizeSlowPath is the same size of message carrying an
// injection attempt, which goes through bluemonday.
func BenchmarkSanitizeSlowPath(b *testing.B) {
	p := Strict()
	in := `See you <b>at 10</b><img src=x onerror=alert(1)>, bring tickets`
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		sink = p.String(in)
	}
}

type benchMessage struct {
	ConversationID string
	Content        string   `sanitize:"html"`
	Subject        *string  `sanitize:"html"`
	Tags           []string `sanitize:"html"`
	Author         struct {
		Name string `sanitize:"html"`
		ID   string
	}
	Attachments []struct {
		Caption string `sanitize:"ugc"`
	}
}

// BenchmarkStruct sanitizes a message of plain text through every kind of
// field: the per-message cost the hub pays when nobody injects anything.
func BenchmarkStruct(b *testing.B) {
	s := New(Options{})
	subject := "weekend plans"
	m := &benchMessage{
		ConversationID: "9f1c2e4a-0b7d-4c1e-9a55-3f2b6c1d8e70",
		Content:        "See you at the station at 10, bring the tickets please",
		Subject:        &subject,
		Tags:           []string{"travel", "friends"},
	}
	m.Author.Name = "Ana"
	m.Attachments = append(m.Attachments, struct {
		Caption string `sanitize:"ugc"`
	}{"the map"})
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Struct(m); err != nil {
			b.Fatal(err)
		}
	}
}
