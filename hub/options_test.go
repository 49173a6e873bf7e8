package hub_test

import (
	"testing"
	"time"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/hub"
)

func TestNewRefusesUnsafeOptions(t *testing.T) {
	authn, err := auth.NewJWT(auth.JWTOptions{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts hub.Options
	}{
		{"no_authenticator_is_refused", hub.Options{}},
		{"negative_message_limit_is_refused", hub.Options{Authenticator: authn, MaxMessageBytes: -1}},
		{"negative_handler_timeout_is_refused", hub.Options{Authenticator: authn, HandlerTimeout: -time.Second}},
		{"handler_deadline_past_pong_timeout_is_refused", hub.Options{Authenticator: authn, HandlerTimeout: 30 * time.Second}},
		{"pong_timeout_of_two_ping_intervals_is_refused", hub.Options{Authenticator: authn, PingInterval: time.Second, PongTimeout: 2 * time.Second, HandlerTimeout: 100 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if h, err := hub.New(tc.opts); err == nil {
				_ = h
				t.Fatal("New accepted unsafe options")
			}
		})
	}
	if _, err := hub.New(hub.Options{Authenticator: authn}); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}
