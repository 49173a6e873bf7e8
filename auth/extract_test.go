package auth_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/wsgate/wsgate/auth"
)

// Distinct token-shaped strings, so a test can tell which source won.
const (
	tokHeader = "aaa.header.sig"
	tokProto  = "bbb.proto.sig"
	tokCookie = "ccc.cookie.sig"
	tokQuery  = "ddd.query.sig"
)

// upgrade builds a handshake request. Each argument is optional: headers as
// name/value pairs, cookies as name/value pairs.
func upgrade(target string, headers, cookies []string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	for i := 0; i+1 < len(cookies); i += 2 {
		r.AddCookie(&http.Cookie{Name: cookies[i], Value: cookies[i+1]})
	}
	return r
}

func TestExtractor(t *testing.T) {
	all := []string{
		"Authorization", "Bearer " + tokHeader,
		"Sec-WebSocket-Protocol", "wsgate.v1, " + auth.SubprotocolPrefix + tokProto,
	}
	session := []string{"session", tokCookie}
	tests := []struct {
		name    string
		ex      auth.Extractor
		req     *http.Request
		want    string
		src     auth.Source
		wantErr error
	}{
		{
			name: "bearer_header",
			req:  upgrade("/ws", []string{"Authorization", "Bearer " + tokHeader}, nil),
			want: tokHeader, src: auth.SourceHeader,
		},
		{
			name: "bearer_scheme_is_case_insensitive",
			req:  upgrade("/ws", []string{"Authorization", "bearer   " + tokHeader}, nil),
			want: tokHeader, src: auth.SourceHeader,
		},
		{
			name: "subprotocol_entry_among_others",
			req:  upgrade("/ws", []string{"Sec-WebSocket-Protocol", "wsgate.v1, " + auth.SubprotocolPrefix + tokProto + ", other"}, nil),
			want: tokProto, src: auth.SourceSubprotocol,
		},
		{
			name: "subprotocol_entry_on_a_second_header_line",
			req: upgrade("/ws", []string{
				"Sec-WebSocket-Protocol", "wsgate.v1",
				"Sec-WebSocket-Protocol", auth.SubprotocolPrefix + tokProto,
			}, nil),
			want: tokProto, src: auth.SourceSubprotocol,
		},
		{
			name: "cookie_is_read_only_when_named",
			ex:   auth.Extractor{Cookie: "session"},
			req:  upgrade("/ws", nil, session),
			want: tokCookie, src: auth.SourceCookie,
		},
		{
			name:    "cookie_is_ignored_by_default",
			req:     upgrade("/ws", nil, session),
			wantErr: auth.ErrNoToken,
		},
		{
			name: "query_is_read_only_when_opted_in",
			ex:   auth.Extractor{QueryParam: "access_token"},
			req:  upgrade("/ws?room=1&access_token="+tokQuery, nil, nil),
			want: tokQuery, src: auth.SourceQuery,
		},
		{
			name:    "query_is_ignored_by_default",
			req:     upgrade("/ws?access_token="+tokQuery, nil, nil),
			wantErr: auth.ErrNoToken,
		},

		// Precedence: header, subprotocol, cookie, query.
		{
			name: "header_wins_over_every_other_source",
			ex:   auth.Extractor{Cookie: "session", QueryParam: "t"},
			req:  upgrade("/ws?t="+tokQuery, all, session),
			want: tokHeader, src: auth.SourceHeader,
		},
		{
			name: "subprotocol_wins_when_the_header_is_disabled",
			ex:   auth.Extractor{DisableHeader: true, Cookie: "session", QueryParam: "t"},
			req:  upgrade("/ws?t="+tokQuery, all, session),
			want: tokProto, src: auth.SourceSubprotocol,
		},
		{
			name: "cookie_wins_over_query",
			ex:   auth.Extractor{DisableHeader: true, DisableSubprotocol: true, Cookie: "session", QueryParam: "t"},
			req:  upgrade("/ws?t="+tokQuery, all, session),
			want: tokCookie, src: auth.SourceCookie,
		},
		{
			name: "non_bearer_authorization_is_ignored",
			req: upgrade("/ws", []string{
				"Authorization", "Basic dXNlcjpwYXNz",
				"Sec-WebSocket-Protocol", auth.SubprotocolPrefix + tokProto,
			}, nil),
			want: tokProto, src: auth.SourceSubprotocol,
		},
		{
			name:    "no_token_anywhere_is_no_token",
			ex:      auth.Extractor{Cookie: "session", QueryParam: "t"},
			req:     upgrade("/ws", []string{"Sec-WebSocket-Protocol", "wsgate.v1"}, nil),
			wantErr: auth.ErrNoToken,
		},
		{
			name:    "disabled_sources_are_not_read",
			ex:      auth.Extractor{DisableHeader: true, DisableSubprotocol: true},
			req:     upgrade("/ws", all, nil),
			wantErr: auth.ErrNoToken,
		},

		// Malformed or ambiguous credentials are refused, not skipped.
		{
			name:    "bearer_without_a_token_is_invalid",
			req:     upgrade("/ws", []string{"Authorization", "Bearer"}, nil),
			src:     auth.SourceHeader,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "bearer_with_two_words_is_invalid",
			req:     upgrade("/ws", []string{"Authorization", "Bearer abc def"}, nil),
			src:     auth.SourceHeader,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "bearer_with_a_quote_is_invalid",
			req:     upgrade("/ws", []string{"Authorization", `Bearer "abc"`}, nil),
			src:     auth.SourceHeader,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "malformed_header_does_not_fall_through_to_the_subprotocol",
			req:     upgrade("/ws", []string{"Authorization", "Bearer", "Sec-WebSocket-Protocol", auth.SubprotocolPrefix + tokProto}, nil),
			src:     auth.SourceHeader,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "two_bearer_headers_are_invalid",
			req:     upgrade("/ws", []string{"Authorization", "Bearer " + tokHeader, "Authorization", "Bearer " + tokProto}, nil),
			src:     auth.SourceHeader,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "empty_subprotocol_token_is_invalid",
			req:     upgrade("/ws", []string{"Sec-WebSocket-Protocol", "wsgate.v1, " + auth.SubprotocolPrefix}, nil),
			src:     auth.SourceSubprotocol,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "two_subprotocol_tokens_are_invalid",
			req:     upgrade("/ws", []string{"Sec-WebSocket-Protocol", auth.SubprotocolPrefix + tokHeader + ", " + auth.SubprotocolPrefix + tokProto}, nil),
			src:     auth.SourceSubprotocol,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "two_different_cookies_of_the_same_name_are_invalid",
			ex:      auth.Extractor{Cookie: "session"},
			req:     upgrade("/ws", nil, []string{"session", tokCookie, "session", tokQuery}),
			src:     auth.SourceCookie,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "query_parameter_given_twice_is_invalid",
			ex:      auth.Extractor{QueryParam: "t"},
			req:     upgrade("/ws?t="+tokQuery+"&t="+tokHeader, nil, nil),
			src:     auth.SourceQuery,
			wantErr: auth.ErrInvalidToken,
		},
		{
			name:    "query_token_with_a_space_is_invalid",
			ex:      auth.Extractor{QueryParam: "t"},
			req:     upgrade("/ws?t=abc%20def", nil, nil),
			src:     auth.SourceQuery,
			wantErr: auth.ErrInvalidToken,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, src, err := tt.ex.Extract(tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Extract error = %v, want %v", err, tt.wantErr)
				}
				if token != "" || src != tt.src {
					t.Fatalf("Extract = %q, %v with an error; want \"\", %v", token, src, tt.src)
				}
				return
			}
			if err != nil {
				t.Fatalf("Extract: unexpected error %v", err)
			}
			if token != tt.want || src != tt.src {
				t.Fatalf("Extract = %q, %v; want %q, %v", token, src, tt.want, tt.src)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	tests := []struct {
		src  auth.Source
		want string
	}{
		{0, "none"},
		{auth.SourceHeader, "header"},
		{auth.SourceSubprotocol, "subprotocol"},
		{auth.SourceCookie, "cookie"},
		{auth.SourceQuery, "query"},
		{auth.SourceMessage, "message"},
		{auth.Source(200), "Source(200)"},
	}
	for _, tt := range tests {
		if got := tt.src.String(); got != tt.want {
			t.Errorf("Source(%d).String() = %q, want %q", uint8(tt.src), got, tt.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		param string
		want  string
	}{
		{"value_is_replaced", "/ws?access_token=eyJ.abc.def", "access_token", "/ws?access_token=REDACTED"},
		{"other_parameters_keep_order_and_encoding", "/ws?b=2&t=secret&a=%20x", "t", "/ws?b=2&t=REDACTED&a=%20x"},
		{"every_occurrence_is_replaced", "/ws?t=one&x=1&t=two", "t", "/ws?t=REDACTED&x=1&t=REDACTED"},
		{"percent_encoded_name_is_recognised", "/ws?%74=secret", "t", "/ws?%74=REDACTED"},
		{"semicolon_separated_value_is_replaced", "/ws?x=1;t=secret", "t", "/ws?x=1;t=REDACTED"},
		{"name_without_value_is_marked", "/ws?t", "t", "/ws?t=REDACTED"},
		{"similar_names_are_kept", "/ws?tt=1&at=2", "t", "/ws?tt=1&at=2"},
		{"password_in_user_info_is_masked", "https://u:pw@example.com/ws?t=s", "t", "https://u:xxxxx@example.com/ws?t=REDACTED"},
		{"empty_param_redacts_nothing", "/ws?t=s", "", "/ws?t=s"},
		{"url_without_query_is_unchanged", "/ws", "t", "/ws"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			before := u.String()
			if got := auth.RedactURL(u, tt.param); got != tt.want {
				t.Fatalf("RedactURL(%q, %q) = %q, want %q", tt.url, tt.param, got, tt.want)
			}
			if u.String() != before {
				t.Fatalf("RedactURL modified its argument: %q", u.String())
			}
		})
	}
	if got := auth.RedactURL(nil, "t"); got != "" {
		t.Fatalf("RedactURL(nil) = %q, want \"\"", got)
	}
}

func TestReason(t *testing.T) {
	cases := map[error]string{
		auth.ErrNoToken: "no_token",
		fmt.Errorf("x: %w", auth.ErrTokenExpired): "expired",
		auth.ErrTokenTooLarge:                     "too_large",
		auth.ErrInvalidToken:                      "invalid",
		errors.New("anything else"):               "invalid",
	}
	for err, want := range cases {
		if got := auth.Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}
