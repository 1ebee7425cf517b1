package cli

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/cdr"
	"github.com/parley-sip/parley/registrar"
)

// sampleRecords are two records, newest first: an echo call of 1002 and
// a busy call from 1001 to 1002.
type sampleRecords struct{ n int }

func (s *sampleRecords) Recent(_ context.Context, n int, user string) ([]cdr.Record, error) {
	s.n = n
	all := []cdr.Record{
		{Src: "1002", Dst: "600", Start: admintest.Start.Add(time.Minute), Answer: admintest.Start.Add(time.Minute),
			End: admintest.Start.Add(time.Minute + 10*time.Second), BillSec: 10, Disposition: cdr.Answered, LastApp: "Echo",
			Codec: "PCMU", Packets: 995, Loss: 5, Reason: "BYE from caller"},
		{Src: "1001", Dst: "1002", Start: admintest.Start, End: admintest.Start.Add(2 * time.Second), Disposition: cdr.Busy,
			LastApp: "Dial", Reason: "486 Busy Here"},
	}
	var out []cdr.Record
	for _, r := range all {
		if len(out) < n && (user == "" || r.Involves(user)) {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestCLILast(t *testing.T) {
	recs := &sampleRecords{}
	addr := apiServer(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithRecords(recs))
	code, out, errs := parley(t, "last", "-admin", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := [][]string{
		{"FROM", "TO", "START", "END", "TALK", "DISPOSITION", "APP", "CODEC", "LOSS", "REASON"},
		{"1002", "600", "2026-11-22 10:05:00", "10:05:10", "10s", "ANSWERED", "Echo", "PCMU", "0.5%", "BYE from caller"},
		{"1001", "1002", "2026-11-22 10:04:00", "10:04:02", "-", "BUSY", "Dial", "-", "-", "486 Busy Here"},
	}
	if got := table(out); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("got\n%s\nwant rows %q", out, want)
	}
	if recs.n != defaultLast {
		t.Errorf("asked for %d records, want %d", recs.n, defaultLast)
	}
	code, out, _ = parley(t, "last", "-n", "5", "1001", "-admin", addr)
	if code != 0 || recs.n != 5 || len(table(out)) != 2 || !strings.Contains(out, "BUSY") {
		t.Errorf("last -n 5 1001: exit %d, n %d:\n%s", code, recs.n, out)
	}
	for _, args := range [][]string{{"-n", "0"}, {"-n", "1001"}, {"a", "b"}} {
		if code, _, _ := parley(t, append([]string{"last", "-admin", addr}, args...)...); code != 2 {
			t.Errorf("last %q: exit %d, want 2", args, code)
		}
	}
}

func TestCLIWhoAndKick(t *testing.T) {
	now := time.Now()
	calls := admintest.NewCalls(
		dialog.Snapshot{ID: "aaaa", From: "1001", To: "1002", State: "active", Start: now.Add(-time.Minute), Answer: now.Add(-50 * time.Second)},
		dialog.Snapshot{ID: "bbbb", From: "1003", To: "600", State: "active", Start: now.Add(-5 * time.Second), Answer: now.Add(-5 * time.Second)},
	)
	regs := admintest.NewRegistrations(
		registrar.Binding{User: "1001", Contact: "sip:1001@192.168.1.30:5060", Transport: "udp", Reachable: registrar.ReachableYes},
		registrar.Binding{User: "1002", Contact: "sip:1002@192.168.1.31:5062", Transport: "tcp"},
	)
	addr := apiServer(t, calls, regs)
	code, out, errs := parley(t, "who", "-admin", addr)
	if code != 0 {
		t.Fatalf("who: exit %d: %s", code, errs)
	}
	want := [][]string{
		{"USER", "CONTACT", "TRANSPORT", "REACHABLE", "CALL"},
		{"1001", "sip:1001@192.168.1.30:5060", "udp", "yes", "with active 1002, 50s"},
		{"1002", "sip:1002@192.168.1.31:5062", "tcp", "unknown", "from active 1001, 50s"},
		{"1003", "-", "-", "-", "with active 600, 5s"},
		{"600", "-", "-", "-", "from active 1003, 5s"},
	}
	if got := table(out); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("who: got\n%s\nwant rows %q", out, want)
	}

	if code, _, errs := parley(t, "kick", "1002", "-admin", addr, "-token", "wrong"); code != 1 || !strings.Contains(errs, "token") {
		t.Errorf("kick with a wrong token: exit %d: %s", code, errs)
	}
	code, out, errs = parley(t, "kick", "1002", "-admin", addr, "-token", testToken)
	if code != 0 || out != "1002: 1 registration removed, 1 call ended\n" {
		t.Fatalf("kick: exit %d, %q %s", code, out, errs)
	}
	if !slices.Equal(calls.HungUp(), []string{"aaaa"}) || len(regs.All()) != 1 {
		t.Errorf("after the kick: hung up %v, bindings %+v", calls.HungUp(), regs.All())
	}
	if code, _, _ := parley(t, "kick", "-admin", addr); code != 2 {
		t.Errorf("kick without a user: exit %d, want 2", code)
	}
}
