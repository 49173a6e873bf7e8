package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The client is what applications embed to talk to a hub: it must not pull
// in the server's packages or their dependencies (golang-jwt above all).
func TestClientImportsNothingOfTheServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/golang-jwt/"),
			strings.HasPrefix(dep, "github.com/wsgate/wsgate/") &&
				dep != "github.com/wsgate/wsgate/protocol" && dep != "github.com/wsgate/wsgate/client":
			t.Errorf("client depends on %s", dep)
		}
	}
}
