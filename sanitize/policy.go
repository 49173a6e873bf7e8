package sanitize

import (
	"sync"

	"github.com/microcosm-cc/bluemonday"
)

// Policy is a bluemonday policy with a fast path for strings that contain no
// markup. It is safe for concurrent use.
type Policy struct {
	bm *bluemonday.Policy // never modified after construction
}

// The built-in policies are shared: a Policy exposes no way to change its
// bluemonday policy, so one instance serves every caller.
var (
	strictPolicy = sync.OnceValue(func() *Policy { return &Policy{bm: bluemonday.StrictPolicy()} })
	ugcPolicy    = sync.OnceValue(func() *Policy { return &Policy{bm: bluemonday.UGCPolicy()} })
)

// Strict returns the policy built on bluemonday.StrictPolicy: every tag is
// removed, text is kept and escaped for HTML.
func Strict() *Policy { return strictPolicy() }

// UGC returns the policy built on bluemonday.UGCPolicy: safe formatting and
// links are kept; scripts, event handlers and unsafe URLs are removed.
func UGC() *Policy { return ugcPolicy() }

// NewPolicy wraps a custom bluemonday policy. p must not be modified
// afterwards, since bluemonday policies are not safe to change while in use.
// A nil p gives Strict, the safe default.
func NewPolicy(p *bluemonday.Policy) *Policy {
	if p == nil {
		return Strict()
	}
	return &Policy{bm: p}
}

// special marks the bytes that make a string worth handing to bluemonday:
// the five that HTML escapes or that open markup, plus '\r', which the HTML
// tokenizer turns into '\n'. Any other string comes back from bluemonday
// unchanged, so returning it as is gives the same result without the parse.
var special = [256]bool{'<': true, '>': true, '&': true, '\'': true, '"': true, '\r': true}

// String returns s sanitized by the policy. A string without any of <>&'"
// and '\r' is returned as is, without allocating. A nil Policy acts as
// Strict.
func (p *Policy) String(s string) string {
	if !needsPolicy(s) {
		return s
	}
	if p == nil {
		p = Strict()
	}
	return p.bm.Sanitize(s)
}

func needsPolicy(s string) bool {
	for i := 0; i < len(s); i++ {
		if special[s[i]] {
			return true
		}
	}
	return false
}
