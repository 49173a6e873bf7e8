package conformance_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wsgate/wsgate/socketio/conformance"
)

// The fixture is an http.Handler serving the suites' paths.
func Example() {
	fx, err := conformance.New()
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(fx)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/engine.io/?EIO=4&transport=polling")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	open, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Contains(string(open), `"upgrades":["websocket"]`))
	// Output: 200 true
}
