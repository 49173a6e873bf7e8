package guard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/guard"
)

func TestChain(t *testing.T) {
	tag := func(name string, order *[]string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				*order = append(*order, name)
				next.ServeHTTP(w, r)
			})
		}
	}
	t.Run("first_middleware_is_outermost", func(t *testing.T) {
		var order []string
		h := guard.Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			order = append(order, "handler")
		}), tag("a", &order), tag("b", &order), tag("c", &order))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		if got := strings.Join(order, ","); got != "a,b,c,handler" {
			t.Errorf("order = %s, want a,b,c,handler", got)
		}
	})
	t.Run("no_middleware_is_the_handler", func(t *testing.T) {
		called := false
		guard.Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })).
			ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		if !called {
			t.Error("handler not called")
		}
	})
	t.Run("nil_middleware_panics_at_setup", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("Chain accepted a nil middleware")
			}
		}()
		guard.Chain(http.NotFoundHandler(), nil)
	})
}
