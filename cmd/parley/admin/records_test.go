package admin_test

import (
	"context"
	"slices"
	"testing"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
	"github.com/parley-sip/parley/dialog/cdr"
)

// fakeRecords holds records newest first, and the last query.
type fakeRecords struct {
	list    []cdr.Record
	n       int
	user    string
	lastErr error
}

func (f *fakeRecords) Recent(_ context.Context, n int, user string) ([]cdr.Record, error) {
	f.n, f.user = n, user
	var out []cdr.Record
	for _, r := range f.list {
		if len(out) < n && (user == "" || r.Involves(user)) {
			out = append(out, r)
		}
	}
	return out, f.lastErr
}

func TestAPICDR(t *testing.T) {
	recs := &fakeRecords{list: []cdr.Record{
		{UniqueID: "c2", Src: "1002", Dst: "600", LastApp: "Echo", Disposition: cdr.Answered},
		{UniqueID: "c1", Src: "1001", Dst: "1002", LastApp: "Dial", Disposition: cdr.Busy},
	}}
	h, _ := newTestAdmin(t, admintest.SampleCalls(), &admintest.Registrations{}, admin.WithRecords(recs))
	rec := do(t, h, "GET", "/api/cdr")
	got := decode[[]cdr.Record](t, rec)
	if rec.Code != 200 || len(got) != 2 || got[0].UniqueID != "c2" || recs.n != 50 {
		t.Fatalf("GET /api/cdr: %d %+v (n %d)", rec.Code, got, recs.n)
	}
	rec = doWith(t, h, "GET", "/api/cdr?n=1&user=1001", "localhost:9060", "")
	got = decode[[]cdr.Record](t, rec)
	if rec.Code != 200 || len(got) != 1 || got[0].UniqueID != "c1" || recs.user != "1001" {
		t.Fatalf("GET /api/cdr?n=1&user=1001 without a token: %d %+v", rec.Code, got)
	}
	for _, q := range []string{"n=0", "n=1001", "n=x"} {
		if rec := do(t, h, "GET", "/api/cdr?"+q); rec.Code != 400 {
			t.Errorf("%s: status %d, want 400", q, rec.Code)
		}
	}
	if rec := do(t, h, "DELETE", "/api/cdr"); rec.Code != 405 {
		t.Errorf("DELETE /api/cdr: %d", rec.Code)
	}
	// Without records: an empty list, not null.
	h, _ = newTestAdmin(t, admintest.SampleCalls(), &admintest.Registrations{})
	if rec := do(t, h, "GET", "/api/cdr"); rec.Code != 200 || rec.Body.String() != "[]\n" {
		t.Errorf("no records: %d %q", rec.Code, rec.Body)
	}
}

func TestAPIKick(t *testing.T) {
	calls := admintest.SampleCalls()
	regs := admintest.SampleRegistrations(admintest.Start)
	h, _ := newTestAdmin(t, calls, regs)
	if rec := doWith(t, h, "POST", "/api/users/1002/kick", "localhost:9060", ""); rec.Code != 401 {
		t.Fatalf("kick without the token: %d", rec.Code)
	}
	if len(calls.HungUp()) != 0 || len(regs.All()) != 2 {
		t.Fatal("kick without the token changed something")
	}
	rec := do(t, h, "POST", "/api/users/1002/kick")
	got := decode[admin.KickBody](t, rec)
	if rec.Code != 200 || got.RegistrationsRemoved != 1 || got.CallsEnded != 2 {
		t.Fatalf("kick 1002: %d %+v", rec.Code, got)
	}
	if hung := calls.HungUp(); !slices.Contains(hung, "aaaa") || !slices.Contains(hung, "bbbb") {
		t.Errorf("calls hung up: %v", hung)
	}
	if rec := do(t, h, "GET", "/api/users/1002/kick"); rec.Code != 405 {
		t.Errorf("GET kick: %d", rec.Code)
	}
	rec = do(t, h, "POST", "/api/users/nobody/kick")
	if got := decode[admin.KickBody](t, rec); rec.Code != 200 || got != (admin.KickBody{}) {
		t.Errorf("kick nobody: %d %+v", rec.Code, got)
	}
}
