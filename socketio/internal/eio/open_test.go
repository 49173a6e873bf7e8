package eio

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// conformance is the configuration the official suites expect.
var conformance = Handshake{
	SID:          "lv_VI97HAXpY6yYWAAAC",
	Upgrades:     []string{"websocket"},
	PingInterval: 300 * time.Millisecond,
	PingTimeout:  200 * time.Millisecond,
	MaxPayload:   1_000_000,
}

func TestAppendOpen(t *testing.T) {
	t.Run("keys_in_the_reference_order", func(t *testing.T) {
		got := string(AppendOpen(nil, conformance))
		want := `0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}`
		if got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
	t.Run("no_upgrades_is_an_empty_array_not_null", func(t *testing.T) {
		h := conformance
		h.Upgrades = nil
		if got := string(AppendOpen(nil, h)); !strings.Contains(got, `"upgrades":[]`) {
			t.Fatalf("got %s, want upgrades []", got)
		}
	})
	t.Run("parses_back", func(t *testing.T) {
		got, err := ParseOpen(AppendOpen(nil, conformance)[1:])
		if err != nil {
			t.Fatal(err)
		}
		if got.SID != conformance.SID || got.PingInterval != conformance.PingInterval ||
			got.PingTimeout != conformance.PingTimeout || got.MaxPayload != conformance.MaxPayload ||
			len(got.Upgrades) != 1 || got.Upgrades[0] != "websocket" {
			t.Fatalf("got %+v", got)
		}
	})
}

func TestParseOpen(t *testing.T) {
	cases := []struct {
		name string
		data string
		ok   bool
	}{
		{"reference_sample", `{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`, true},
		{"missing_maxPayload_is_refused", `{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1}`, false},
		{"missing_upgrades_is_refused", `{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":1}`, false},
		{"empty_sid_is_refused", `{"sid":"","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1}`, false},
		{"zero_interval_is_refused", `{"sid":"a","upgrades":[],"pingInterval":0,"pingTimeout":1,"maxPayload":1}`, false},
		{"unknown_key_is_refused", `{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1,"x":1}`, false},
		{"trailing_data_is_refused", `{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1} {}`, false},
		{"not_json_is_refused", `sid`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOpen([]byte(tc.data))
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestHandshakeStringHidesTheSID(t *testing.T) {
	if s := conformance.String(); strings.Contains(s, conformance.SID) {
		t.Fatalf("String() = %q leaks the sid, a bearer credential", s)
	}
}

func TestNewSID(t *testing.T) {
	const n = 1000
	seen := make(map[string]bool, n)
	for range n {
		s := NewSID()
		if len(s) != SIDLen || !ValidSID(s) {
			t.Fatalf("NewSID() = %q, not a valid sid", s)
		}
		if seen[s] {
			t.Fatalf("NewSID() repeated %q", s)
		}
		seen[s] = true
	}
	if sidBytes*8 < 128 {
		t.Fatalf("a sid carries %d random bits, want at least 128", sidBytes*8)
	}
}

func TestValidSID(t *testing.T) {
	cases := []struct {
		name string
		sid  string
		ok   bool
	}{
		{"fresh_sid", NewSID(), true},
		{"empty_is_refused", "", false},
		{"reference_20_char_sid_is_refused", "lv_VI97HAXpY6yYWAAAC", false},
		{"one_char_too_long_is_refused", NewSID() + "a", false},
		{"padding_is_refused", strings.Repeat("a", SIDLen-1) + "=", false},
		{"standard_base64_plus_is_refused", strings.Repeat("a", SIDLen-1) + "+", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidSID(tc.sid); got != tc.ok {
				t.Fatalf("ValidSID(%q) = %v, want %v", tc.sid, got, tc.ok)
			}
		})
	}
}
