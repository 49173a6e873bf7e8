package guard

import (
	"fmt"
	"net/http"
)

// Chain wraps h in mws so that the first middleware is the outermost: it sees
// the request first, and a refusal there means the later ones never run.
// A nil middleware panics here, at set-up, rather than letting a guard
// silently drop out of the chain.
func Chain(h http.Handler, mws ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] == nil {
			panic(fmt.Sprintf("guard: Chain: middleware %d is nil", i))
		}
		h = mws[i](h)
	}
	return h
}
