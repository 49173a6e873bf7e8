package main

import (
	"net/http"
	"testing"
)

// TestAPICrossTenantTricks replays, against the publish API, the ways a
// tenant admin could try to reach another tenant beyond asking for it
// plainly (TestAPIAuthorization): JSON that a lenient decoder reads one
// way and a reviewer another, and ids that only look like their own
// tenant. The suite of attacks on the library is internal/adversarial.
func TestAPICrossTenantTricks(t *testing.T) {
	e := startServer(t, nil)
	carol := e.connect(t, "carol") // globex: nothing may reach her
	bob := e.connect(t, "bob")     // acme
	tests := []struct {
		name string
		body string
		want int
	}{
		{"duplicate_id_last_names_another_tenant", `{"target":"tenant","id":"acme","id":"globex","title":"x"}`, http.StatusForbidden},
		{"case_variant_key_names_another_tenant", `{"target":"tenant","id":"acme","ID":"globex","title":"x"}`, http.StatusForbidden},
		{"case_variant_target_asks_for_global", `{"target":"tenant","id":"acme","Target":"global","title":"x"}`, http.StatusBadRequest},
		{"duplicate_target_asks_for_global", `{"target":"tenant","target":"global","title":"x"}`, http.StatusForbidden},
		{"upper_case_tenant", `{"target":"tenant","id":"GLOBEX","title":"x"}`, http.StatusForbidden},
		{"tenant_with_a_trailing_space", `{"target":"tenant","id":"globex ","title":"x"}`, http.StatusForbidden},
		{"own_tenant_with_a_suffix", `{"target":"tenant","id":"acme:globex","title":"x"}`, http.StatusForbidden},
		{"escaped_spelling_of_another_tenant", `{"target":"tenant","id":"glob\u0065x","title":"x"}`, http.StatusForbidden},
		{"user_of_another_tenant_with_a_suffix", `{"target":"user","id":"carol ","title":"x"}`, http.StatusForbidden},
	}
	admin := e.token(t, "alice") // ADMIN of acme
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp := e.post(t, admin, "application/json", []byte(tt.body))
			if status != tt.want {
				t.Fatalf("got %d %v, want %d", status, resp, tt.want)
			}
		})
	}
	carol.expectNoEvent("another tenant's admin")
	bob.expectNoEvent("every request was refused")
}
