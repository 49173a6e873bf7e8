package protocol_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/hub"
	codec "github.com/wsgate/wsgate/internal/protocol"
	"github.com/wsgate/wsgate/protocol"
	"github.com/wsgate/wsgate/room"
)

// The constants and docs/PROTOCOL.md must not drift apart: every code the
// document lists is a constant here, and every constant is documented.
func TestConstantsMatchTheProtocolDocument(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	errorCodes := []string{
		protocol.CodeInvalidMessage, protocol.CodeUnknownEvent, protocol.CodeMessageTooLarge,
		protocol.CodeRateLimited, protocol.CodeForbidden, protocol.CodeRoomLimitExceeded,
		protocol.CodeUnauthorized, protocol.CodeTokenExpired, protocol.CodeTimeout, protocol.CodeInternal,
		protocol.CodeConnectionLimit, protocol.CodeUnavailable, protocol.CodeBadRequest,
	}
	documented := regexp.MustCompile("(?m)^\\| (?:[0-9]{3} \\| )?`([A-Z_]+)` \\|").FindAllSubmatch(doc, -1)
	if len(documented) < 10 {
		t.Fatalf("found only %d documented codes: has the table format changed?", len(documented))
	}
	for _, m := range documented {
		if !slices.Contains(errorCodes, string(m[1])) {
			t.Errorf("docs/PROTOCOL.md lists code %s, which has no constant", m[1])
		}
	}
	for _, c := range errorCodes {
		if !regexp.MustCompile("`" + c + "`").Match(doc) {
			t.Errorf("code %s is not in docs/PROTOCOL.md", c)
		}
	}

	closeCodes := []protocol.CloseCode{
		protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseProtocolError, protocol.CloseUnsupportedData, protocol.CloseAbnormal,
		protocol.CloseInvalidPayload, protocol.ClosePolicyViolation, protocol.CloseMessageTooBig,
		protocol.CloseInternalError, protocol.CloseServiceRestart, protocol.CloseTryAgainLater,
		protocol.CloseUnauthorized, protocol.CloseIdle, protocol.CloseTokenExpired,
		protocol.CloseSlowConsumer, protocol.CloseConnectionLimit,
	}
	rows := regexp.MustCompile(`(?m)^\| ([0-9]{4}) \|`).FindAllSubmatch(doc, -1)
	var listed []protocol.CloseCode
	for _, m := range rows {
		n, _ := strconv.Atoi(string(m[1]))
		listed = append(listed, protocol.CloseCode(n))
	}
	for _, c := range closeCodes {
		if !slices.Contains(listed, c) {
			t.Errorf("close code %v is not in docs/PROTOCOL.md's table", c)
		}
	}
	for _, c := range listed {
		if !slices.Contains(closeCodes, c) {
			t.Errorf("docs/PROTOCOL.md lists close code %d, which has no constant", c)
		}
	}
}

func TestCloseCodeString(t *testing.T) {
	for code, want := range map[protocol.CloseCode]string{
		protocol.CloseTokenExpired:   "token expired (4003)",
		protocol.CloseServiceRestart: "service restart (1012)",
		4999:                         "4999",
	} {
		if got := code.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint16(code), got, want)
		}
	}
}

// The hub's codec has its own copy of the limits; they must agree with the
// ones clients read here.
func TestLimitsAgreeWithTheServerCodec(t *testing.T) {
	if protocol.Subprotocol != codec.NativeSubprotocol || protocol.MaxID != codec.MaxID ||
		protocol.MaxEventLen != codec.MaxEventLen || protocol.MaxRoomLen != codec.MaxRoomLen ||
		protocol.MaxTokenLen != codec.MaxTokenLen {
		t.Fatal("a limit or the subprotocol differs between package protocol and the hub's codec")
	}
	for _, name := range []string{"", "message:send", "a.b_c-d:9", "white space", "é", "<x>", strings.Repeat("e", 64), strings.Repeat("e", 65)} {
		if protocol.ValidEvent(name) != codec.ValidEventName(name) {
			t.Errorf("ValidEvent(%q) = %v, the codec says %v", name, protocol.ValidEvent(name), codec.ValidEventName(name))
		}
	}
}

// The hub declares its own codes and close codes; they must equal these.
func TestHubConstantsMatch(t *testing.T) {
	codes := map[string][2]string{
		"INVALID_MESSAGE":     {protocol.CodeInvalidMessage, hub.CodeInvalidMessage},
		"UNKNOWN_EVENT":       {protocol.CodeUnknownEvent, hub.CodeUnknownEvent},
		"MESSAGE_TOO_LARGE":   {protocol.CodeMessageTooLarge, hub.CodeMessageTooLarge},
		"RATE_LIMITED":        {protocol.CodeRateLimited, hub.CodeRateLimited},
		"FORBIDDEN":           {protocol.CodeForbidden, hub.CodeForbidden},
		"ROOM_LIMIT_EXCEEDED": {protocol.CodeRoomLimitExceeded, hub.CodeRoomLimitExceeded},
		"UNAUTHORIZED":        {protocol.CodeUnauthorized, hub.CodeUnauthorized},
		"TOKEN_EXPIRED":       {protocol.CodeTokenExpired, hub.CodeTokenExpired},
		"TIMEOUT":             {protocol.CodeTimeout, hub.CodeTimeout},
		"INTERNAL":            {protocol.CodeInternal, hub.CodeInternal},
	}
	for name, p := range codes {
		if p[0] != p[1] || p[0] != name {
			t.Errorf("%s: protocol %q, hub %q", name, p[0], p[1])
		}
	}
	closes := map[protocol.CloseCode]int{
		protocol.CloseUnauthorized:    int(hub.CloseUnauthorized),
		protocol.CloseIdle:            int(hub.CloseIdle),
		protocol.CloseTokenExpired:    int(hub.CloseTokenExpired),
		protocol.CloseSlowConsumer:    int(hub.CloseSlowConsumer),
		protocol.CloseConnectionLimit: int(hub.CloseConnectionLimit),
	}
	for p, h := range closes {
		if int(p) != h {
			t.Errorf("%v: hub has %d", p, h)
		}
	}
}

// Clients check room names with ValidRoom before sending them; the server
// parses them with package room. Both must agree on every name a message
// can carry (at most MaxRoomLen bytes; the server also names longer rooms,
// for long user ids, that no client sends).
func TestValidRoomAgreesWithTheServer(t *testing.T) {
	names := []string{
		"", "global", "user:42", "tenant:acme", "conversation:9f1c-aa", "a:b:c", "A:1", "1a:x", "kind:",
		":arg", "kind:sp ace", "kind:é", "kind:x/y", "k_-9:a.b_c~d@e+f-g", "user:%41",
		"user:auth0%7C507f1f77bcf86cd799439011", "user:auth0%7c1", "user:a%7", "user:%", "user:jos%C3%A9",
		strings.Repeat("k", 32), strings.Repeat("k", 33), "k:" + strings.Repeat("a", 96), "k:" + strings.Repeat("a", 97),
		strings.Repeat("k", 32) + ":" + strings.Repeat("a", 95), strings.Repeat("k", 32) + ":" + strings.Repeat("a", 96),
		"k:" + strings.Repeat("a", 126), "k:" + strings.Repeat("%7C", 42),
	}
	for _, n := range names {
		if protocol.ValidRoom(n) != sendable(n) {
			t.Errorf("ValidRoom(%q) = %v, room.Valid = %v", n, protocol.ValidRoom(n), room.Valid(n))
		}
	}
}

// sendable is what the server accepts in a message: a valid name that fits.
func sendable(name string) bool { return room.Valid(name) && len(name) <= protocol.MaxRoomLen }

func FuzzValidRoom(f *testing.F) {
	for _, s := range []string{"user:42", "a:b:c", "k:" + strings.Repeat("a", 96)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		if protocol.ValidRoom(n) != sendable(n) {
			t.Fatalf("ValidRoom(%q) = %v, room.Valid = %v", n, protocol.ValidRoom(n), room.Valid(n))
		}
	})
}
