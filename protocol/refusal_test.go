package protocol_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

func TestRefusal(t *testing.T) {
	errLimit := errors.New("limit")
	tests := []struct {
		name       string
		r          protocol.Refusal
		wantStatus int
		wantCode   string
		wantRetry  string
	}{
		{"status_code_and_message_are_written", protocol.Refusal{Status: 429, Code: protocol.CodeConnectionLimit, Message: "too many"}, 429, protocol.CodeConnectionLimit, ""},
		{"retry_after_rounds_up_to_whole_seconds", protocol.Refusal{Status: 503, Code: protocol.CodeUnavailable, RetryAfter: 1500 * time.Millisecond}, 503, protocol.CodeUnavailable, "2"},
		{"sub_second_retry_after_is_one_second", protocol.Refusal{Status: 429, Code: protocol.CodeRateLimited, RetryAfter: time.Millisecond}, 429, protocol.CodeRateLimited, "1"},
		{"zero_refusal_is_403_forbidden", protocol.Refusal{Err: errLimit}, 403, protocol.CodeForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.r.Write(rec)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			h := rec.Header()
			if h.Get("Retry-After") != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", h.Get("Retry-After"), tt.wantRetry)
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("headers = %v", h)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if len(body) != 2 || body["code"] != tt.wantCode || body["message"] != tt.r.Message {
				t.Errorf("body = %v, want code %s and message %q only", body, tt.wantCode, tt.r.Message)
			}
		})
	}
}

func TestRefusalIsAnErrorWrappingItsCause(t *testing.T) {
	cause := errors.New("per-user limit")
	var err error = &protocol.Refusal{Status: http.StatusTooManyRequests, Code: protocol.CodeConnectionLimit, Message: "too many connections", Err: cause}
	if !errors.Is(err, cause) {
		t.Error("errors.Is(refusal, cause) = false")
	}
	var r *protocol.Refusal
	if !errors.As(err, &r) || r.Status != http.StatusTooManyRequests {
		t.Errorf("errors.As = %v, %+v", errors.As(err, &r), r)
	}
	if got := err.Error(); got != "CONNECTION_LIMIT_EXCEEDED: too many connections" {
		t.Errorf("Error() = %q", got)
	}
}
