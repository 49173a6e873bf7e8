package socketio

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// The differential records: the transcripts of testdata/node played
// against the Node.js reference server (expected/) and against
// examples/socketio-conformance (expected-wsgate/) differ only where
// differences.json says why. make conformance replays them against both
// servers (node is needed there); this test keeps the committed records
// and the list of differences in agreement, both ways.
func TestDifferentialRecords(t *testing.T) {
	dir := filepath.Join("testdata", "node")
	raw, err := os.ReadFile(filepath.Join(dir, "differences.json"))
	if err != nil {
		t.Fatal(err)
	}
	var listed map[string]json.RawMessage
	if err := json.Unmarshal(raw, &listed); err != nil {
		t.Fatal(err)
	}
	transcripts, err := filepath.Glob(filepath.Join(dir, "transcripts", "*.json"))
	if err != nil || len(transcripts) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, tr := range transcripts {
		name := filepath.Base(tr)
		t.Run(name, func(t *testing.T) {
			ref, ours := readRecord(t, filepath.Join(dir, "expected", name)), readRecord(t, filepath.Join(dir, "expected-wsgate", name))
			if len(ref) != len(ours) {
				t.Fatalf("the records have %d and %d entries", len(ref), len(ours))
			}
			var differ []int
			for i := range ref {
				if !reflect.DeepEqual(ref[i], ours[i]) {
					differ = append(differ, i)
				}
			}
			var want []struct {
				Entry int    `json:"entry"`
				Why   string `json:"why"`
			}
			if l, ok := listed[name]; ok {
				if err := json.Unmarshal(l, &want); err != nil {
					t.Fatal(err)
				}
			}
			var wantIdx []int
			for _, w := range want {
				if w.Why == "" {
					t.Fatalf("entry %d is listed without a reason", w.Entry)
				}
				wantIdx = append(wantIdx, w.Entry)
			}
			if !slices.Equal(differ, wantIdx) {
				t.Fatalf("entries that differ from the reference: %v; differences.json lists %v", differ, wantIdx)
			}
		})
	}
}

func readRecord(t *testing.T, path string) []any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec []any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rec
}
