package eio

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestErrorCodes(t *testing.T) {
	// Status and body of each code as the reference server (engine.io 6.6)
	// sends them.
	cases := []struct {
		code   ErrorCode
		status int
		body   string
	}{
		{CodeUnknownTransport, 400, `{"code":0,"message":"Transport unknown"}`},
		{CodeUnknownSID, 400, `{"code":1,"message":"Session ID unknown"}`},
		{CodeBadHandshakeMethod, 400, `{"code":2,"message":"Bad handshake method"}`},
		{CodeBadRequest, 400, `{"code":3,"message":"Bad request"}`},
		{CodeForbidden, 403, `{"code":4,"message":"Forbidden"}`},
		{CodeUnsupportedProtocol, 400, `{"code":5,"message":"Unsupported protocol version"}`},
	}
	for _, tc := range cases {
		t.Run(tc.code.Message(), func(t *testing.T) {
			if got := tc.code.Status(); got != tc.status {
				t.Fatalf("Status() = %d, want %d", got, tc.status)
			}
			if got := string(AppendErrorBody(nil, tc.code)); got != tc.body {
				t.Fatalf("body = %s, want %s", got, tc.body)
			}
		})
	}
	if got := ErrorCode(42).Message(); got != "Bad request" {
		t.Fatalf("unknown code message = %q, want the generic one", got)
	}
}

// refuser is the front of an Engine.IO endpoint: ParseQuery, then WriteError
// on refusal, 200 "ok" otherwise.
func refuser(w http.ResponseWriter, r *http.Request) {
	if _, err := ParseQuery(r); err != nil {
		var code ErrorCode
		if !errors.As(err, &code) {
			http.Error(w, "not an ErrorCode", 500)
			return
		}
		WriteError(w, code)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// TestParseQueryAnswersAsTheReferenceServer replays over loopback the
// requests the official suites make (and a few more), with the statuses and
// bodies the reference server answered them with.
func TestParseQueryAnswersAsTheReferenceServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(refuser))
	defer srv.Close()
	upgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	cases := []struct {
		name    string
		method  string
		query   string
		headers map[string]string
		status  int
		body    string
	}{
		{"missing_EIO_is_an_unsupported_protocol", "GET", "?transport=polling", nil, 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"EIO_abc_is_an_unsupported_protocol", "GET", "?EIO=abc&transport=polling", nil, 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"EIO_3_is_an_unsupported_protocol", "GET", "?EIO=3&transport=polling", nil, 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"missing_transport_is_unknown", "GET", "?EIO=4", nil, 400, `{"code":0,"message":"Transport unknown"}`},
		{"transport_abc_is_unknown", "GET", "?EIO=4&transport=abc", nil, 400, `{"code":0,"message":"Transport unknown"}`},
		{"webtransport_is_unknown", "GET", "?EIO=4&transport=webtransport", nil, 400, `{"code":0,"message":"Transport unknown"}`},
		{"websocket_without_upgrade_headers_is_a_bad_request", "GET", "?EIO=4&transport=websocket", nil, 400, `{"code":3,"message":"Bad request"}`},
		{"POST_handshake_is_a_bad_method", "POST", "?EIO=4&transport=polling", nil, 400, `{"code":2,"message":"Bad handshake method"}`},
		{"PUT_handshake_is_a_bad_method", "PUT", "?EIO=4&transport=polling", nil, 400, `{"code":2,"message":"Bad handshake method"}`},
		{"bad_method_is_checked_before_the_protocol", "POST", "?EIO=abc&transport=polling", nil, 400, `{"code":2,"message":"Bad handshake method"}`},
		{"unknown_transport_is_checked_first", "POST", "?transport=x", nil, 400, `{"code":0,"message":"Transport unknown"}`},
		{"polling_handshake_passes", "GET", "?EIO=4&transport=polling", nil, 200, "ok"},
		{"websocket_upgrade_passes", "GET", "?EIO=4&transport=websocket", upgrade, 200, "ok"},
		{"request_with_a_sid_is_left_to_the_session_lookup", "POST", "?EIO=3&transport=polling&sid=abc", nil, 200, "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+"/engine.io/"+tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || string(body) != tc.body {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status != 200 && resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type = %q, want application/json", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestParseQueryReadsTheParameters(t *testing.T) {
	r := httptest.NewRequest("GET", "/socket.io/?EIO=4&transport=polling&sid=abc&b64=1&t=N8hyd6w", nil)
	q, err := ParseQuery(r)
	if err != nil {
		t.Fatal(err)
	}
	if q.Transport != Polling || q.SID != "abc" || !q.EIO4 || !q.Base64 || q.Upgrade {
		t.Fatalf("got %+v", q)
	}
	r = httptest.NewRequest("GET", "/socket.io/?EIO=4&transport=websocket", nil)
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "WebSocket")
	if q, err = ParseQuery(r); err != nil || q.Transport != WebSocket || !q.Upgrade || q.Base64 {
		t.Fatalf("got %+v, %v", q, err)
	}
	if got := q.Transport.String(); got != "websocket" {
		t.Fatalf("String() = %q", got)
	}
	if !strings.Contains(CodeForbidden.Error(), "Forbidden") {
		t.Fatalf("Error() = %q", CodeForbidden.Error())
	}
}
