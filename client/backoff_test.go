package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/protocol"
)

func TestBackoffWindow(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2}
	cases := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 500 * time.Millisecond},
		{1, time.Second},
		{2, 2 * time.Second},
		{5, 16 * time.Second},
		{6, 30 * time.Second}, // 32 s capped
		{1000, 30 * time.Second},
		{1 << 30, 30 * time.Second}, // Multiplier^n overflows to +Inf
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("attempt_%d", tc.attempt), func(t *testing.T) {
			if got := b.window(tc.attempt); got != tc.want {
				t.Fatalf("window = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("multiplier_1_is_a_constant_window", func(t *testing.T) {
		b := Backoff{Min: time.Second, Max: time.Minute, Multiplier: 1}
		if got := b.window(50); got != time.Second {
			t.Fatalf("window = %v, want 1s", got)
		}
	})
}

// TestBackoffDelayIsFullJitter draws from a seeded source: the same seed
// gives the same waits, every wait is in [0, window), and they cover the
// window evenly rather than clustering at its end.
func TestBackoffDelayIsFullJitter(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second, Multiplier: 2}
	seeded := func() func(int64) int64 { return rand.New(rand.NewPCG(1, 2)).Int64N }

	t.Run("same_seed_same_waits", func(t *testing.T) {
		r1, r2 := seeded(), seeded()
		for n := range 20 {
			if d1, d2 := b.delay(n, r1), b.delay(n, r2); d1 != d2 {
				t.Fatalf("attempt %d: %v != %v", n, d1, d2)
			}
		}
	})
	for _, attempt := range []int{0, 2, 10} {
		t.Run(fmt.Sprintf("attempt_%d_is_uniform_over_its_window", attempt), func(t *testing.T) {
			r := seeded()
			w := b.window(attempt)
			const draws, buckets = 10000, 10
			var hist [buckets]int
			var sum time.Duration
			for range draws {
				d := b.delay(attempt, r)
				if d < 0 || d >= w {
					t.Fatalf("delay %v outside [0, %v)", d, w)
				}
				hist[int(d*buckets/w)]++
				sum += d
			}
			if mean := sum / draws; mean < w*45/100 || mean > w*55/100 {
				t.Fatalf("mean %v, want about %v", mean, w/2)
			}
			for i, n := range hist {
				if n < draws/buckets*8/10 || n > draws/buckets*12/10 {
					t.Fatalf("bucket %d holds %d of %d draws: %v", i, n, draws, hist)
				}
			}
		})
	}
	t.Run("zero_window_is_no_wait", func(t *testing.T) {
		if d := (Backoff{}).delay(3, seeded()); d != 0 {
			t.Fatalf("delay = %v", d)
		}
	})
}

// TestJudgeFollowsTheProtocol checks the reconnect policy against the close
// codes and HTTP answers of docs/PROTOCOL.md.
func TestJudgeFollowsTheProtocol(t *testing.T) {
	closed := func(code protocol.CloseCode) error {
		return fmt.Errorf("read: %w", websocket.CloseError{Code: websocket.StatusCode(code), Reason: "x"})
	}
	refused := func(status int, retryAfter time.Duration) error {
		return &HandshakeError{Status: status, RetryAfter: retryAfter}
	}
	retry := verdict{}
	cases := []struct {
		name string
		err  error
		want verdict
	}{
		{"1000_normal_reconnects", closed(protocol.CloseNormal), retry},
		{"1001_going_away_reconnects", closed(protocol.CloseGoingAway), retry},
		{"1003_unsupported_data_is_a_client_bug", closed(protocol.CloseUnsupportedData), verdict{stop: true}},
		{"1007_invalid_utf8_is_a_client_bug", closed(protocol.CloseInvalidPayload), verdict{stop: true}},
		{"1008_policy_violation_waits_10s", closed(protocol.ClosePolicyViolation), verdict{floor: 10 * time.Second}},
		{"1009_too_big_is_a_client_bug", closed(protocol.CloseMessageTooBig), verdict{stop: true}},
		{"1011_internal_error_reconnects", closed(protocol.CloseInternalError), retry},
		{"1012_service_restart_restarts_the_backoff", closed(protocol.CloseServiceRestart), verdict{restart: true}},
		{"1013_try_again_later_reconnects", closed(protocol.CloseTryAgainLater), retry},
		{"4001_unauthorized_needs_a_new_token", closed(protocol.CloseUnauthorized), verdict{auth: true}},
		{"4001_after_the_welcome_is_a_final_logout", fmt.Errorf("%w: %w", ErrLoggedOut, closed(protocol.CloseUnauthorized)), verdict{stop: true}},
		{"4002_idle_reconnects_when_needed", closed(protocol.CloseIdle), verdict{lazy: true}},
		{"4003_token_expired_reconnects", closed(protocol.CloseTokenExpired), retry},
		{"4008_slow_consumer_reconnects", closed(protocol.CloseSlowConsumer), retry},
		{"4029_connection_limit_waits_30s", closed(protocol.CloseConnectionLimit), verdict{floor: 30 * time.Second}},
		{"network_loss_reconnects", errors.New("read tcp: connection reset by peer"), retry},
		{"heartbeat_timeout_reconnects", ErrHeartbeatTimeout, retry},
		{"own_slow_consumer_close_reconnects", ErrSlowConsumer, retry},
		{"http_400_is_a_client_bug", refused(http.StatusBadRequest, 0), verdict{stop: true}},
		{"http_401_needs_a_new_token", refused(http.StatusUnauthorized, 0), verdict{auth: true}},
		{"http_403_origin_is_final", refused(http.StatusForbidden, 0), verdict{stop: true}},
		{"http_429_waits_retry_after", refused(http.StatusTooManyRequests, 30*time.Second), verdict{floor: 30 * time.Second}},
		{"http_503_waits_retry_after", refused(http.StatusServiceUnavailable, 5*time.Second), verdict{floor: 5 * time.Second}},
		{"http_502_reconnects", refused(http.StatusBadGateway, 0), retry},
		{"not_a_wsgate_server_is_final", fmt.Errorf("%w: no welcome", ErrProtocol), verdict{stop: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := judge(tc.err); got != tc.want {
				t.Fatalf("judge = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMessageIDsStayBelow2To53(t *testing.T) {
	c := &Client{}
	if id := c.nextID(); id != 1 {
		t.Fatalf("first id = %d, want 1", id)
	}
	c.ids.Store(1<<53 - 2)
	if got := []uint64{c.nextID(), c.nextID()}; got[0] != 1<<53-1 || got[1] != 1 {
		t.Fatalf("ids around 2^53 = %v, want [2^53-1 1]", got)
	}
}
