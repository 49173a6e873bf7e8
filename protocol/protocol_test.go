package protocol_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/wsgate/wsgate/protocol"
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
		protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseUnsupportedData, protocol.CloseAbnormal,
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
		if c != protocol.CloseGoingAway && !slices.Contains(listed, c) {
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
