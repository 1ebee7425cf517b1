package cdr

import (
	"flag"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) {
	// cdr_csv writes local time: the golden lines are in a fixed zone an
	// hour east of UTC, whatever the machine's.
	time.Local = time.FixedZone("CET", 3600)
	goleak.VerifyTestMain(m)
}

func readGolden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	return want
}
