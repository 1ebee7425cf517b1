package admin_test

import (
	"io"
	"strings"
	"testing"

	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
)

func TestReadyz(t *testing.T) {
	h, st := newTestAdmin(t, &admintest.Calls{}, &admintest.Registrations{})
	check := func(code int, body string) {
		t.Helper()
		rec := do(t, h, "GET", "/readyz")
		b, _ := io.ReadAll(rec.Body)
		if rec.Code != code || !strings.Contains(string(b), body) {
			t.Fatalf("/readyz: %d %q, want %d %q", rec.Code, b, code, body)
		}
	}
	check(503, "not ready")
	st.SetReady()
	check(200, "ready")
	st.SetDraining()
	check(503, "draining")
}
