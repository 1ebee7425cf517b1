package admin_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
	"github.com/parley-sip/parley/dialog/trunk"
)

type fakeTrunks []trunk.Status

func (f fakeTrunks) Trunks() []trunk.Status { return f }

// TestAPITrunks: GET /api/trunks lists the trunks as the Set gives them,
// and an empty list (not null) without trunks.
func TestAPITrunks(t *testing.T) {
	exp := time.Date(2026, 1, 1, 12, 30, 0, 0, time.UTC)
	h, _ := newTestAdmin(t, admintest.NewCalls(), admintest.NewRegistrations(), admin.WithTrunks(fakeTrunks{
		{Name: "prov", Registrar: "192.0.2.1:5060", Username: "trunkuser", State: trunk.StateRegistered, Expires: exp},
		{Name: "backup", Registrar: "192.0.2.2", Username: "x", State: trunk.StateFailed, Failures: 3, LastError: "trunk: credentials refused: 403 Forbidden"},
	}))
	rec := do(t, h, "GET", "/api/trunks")
	if rec.Code != 200 {
		t.Fatalf("GET /api/trunks: %d %s", rec.Code, rec.Body)
	}
	var got []trunk.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].State != trunk.StateRegistered || !got[0].Expires.Equal(exp) || got[1].Failures != 3 {
		t.Errorf("got %+v", got)
	}
	if strings.Contains(rec.Body.String(), "password") {
		t.Errorf("the trunks' JSON has a password field: %s", rec.Body)
	}

	h, _ = newTestAdmin(t, admintest.NewCalls(), admintest.NewRegistrations())
	if rec := do(t, h, "GET", "/api/trunks"); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("without trunks: %d %s, want 200 []", rec.Code, rec.Body)
	}
}
