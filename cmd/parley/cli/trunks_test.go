package cli

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/parley-sip/parley/dialog/trunk"
)

func TestPrintTrunks(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	err := printTrunks(&out, []trunk.Status{
		{Name: "prov", Registrar: "192.0.2.1:5060", Username: "trunkuser", State: trunk.StateRegistered,
			Expires: now.Add(time.Hour), Next: now.Add(30 * time.Minute)},
		{Name: "backup", Registrar: "192.0.2.2", Username: "x", State: trunk.StateFailed, Failures: 2,
			Next: now.Add(time.Minute), LastError: "trunk: credentials refused: 403 Forbidden"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"TRUNK", "REGISTRAR", "USER", "STATE", "EXPIRES-IN", "NEXT-IN", "FAILURES", "LAST-ERROR"},
		{"prov", "192.0.2.1:5060", "trunkuser", "registered", "1h0m0s", "30m0s", "0", "-"},
		{"backup", "192.0.2.2", "x", "failed", "-", "1m0s", "2", "trunk: credentials refused: 403 Forbidden"},
	}
	if got := table(out.String()); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("got\n%s\nwant rows %q", out.String(), want)
	}
}
