package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
	"github.com/parley-sip/parley/dialog/guard"
)

// testToken is the admin token of the Servers newTestAdmin builds.
const testToken = "0123456789abcdef0123456789abcdef"

// newTestAdmin returns the handler of a Server over calls and regs, with
// testToken, and the Server, to change its readiness.
func newTestAdmin(t *testing.T, calls admin.CallTable, regs admin.Registrations, opts ...admin.Option) (http.Handler, *admin.Server) {
	t.Helper()
	srv, err := admin.New("", append([]admin.Option{admin.WithMetrics(prometheus.NewRegistry()), admin.WithCalls(calls),
		admin.WithRegistrations(regs), admin.WithToken(testToken)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler(), srv
}

// do sends method path to h as the operator commands would: to
// localhost, with testToken.
func do(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	return doWith(t, h, method, path, "localhost:9060", "Bearer "+testToken)
}

// doWith sends method path to h with the Host and Authorization given
// (none when empty).
func doWith(t *testing.T, h http.Handler, method, path, host, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Host = host
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, rec.Body)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return v
}

func TestAPICalls(t *testing.T) {
	h, _ := newTestAdmin(t, admintest.SampleCalls(), &admintest.Registrations{})
	rec := do(t, h, "GET", "/api/calls")
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	got := decode[[]map[string]any](t, rec)
	if len(got) != 2 || got[0]["id"] != "aaaa" || got[1]["id"] != "bbbb" {
		t.Fatalf("want calls oldest first, got %v", got)
	}
	for _, key := range []string{"id", "from", "to", "state", "start", "answer", "media"} {
		if _, ok := got[0][key]; !ok {
			t.Errorf("call has no %q: %v", key, got[0])
		}
	}
	media := got[0]["media"].(map[string]any)
	if media["codec"] != "PCMU" || media["lost"] != 5.0 || media["jitter_ns"] != 2.5e6 {
		t.Errorf("media %v", media)
	}
	if _, ok := got[1]["answer"]; ok {
		t.Errorf("unanswered call has an answer time: %v", got[1])
	}
}

func TestAPICallsEmptyIsArray(t *testing.T) {
	h, _ := newTestAdmin(t, &admintest.Calls{}, &admintest.Registrations{})
	rec := do(t, h, "GET", "/api/calls")
	if body := strings.TrimSpace(rec.Body.String()); body != "[]" {
		t.Fatalf("body %q, want []", body)
	}
	rec = do(t, h, "GET", "/api/registrations")
	if body := strings.TrimSpace(rec.Body.String()); body != "[]" {
		t.Fatalf("body %q, want []", body)
	}
	h, _ = newTestAdmin(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithBans(&admintest.Bans{}))
	rec = do(t, h, "GET", "/api/bans")
	if body := strings.TrimSpace(rec.Body.String()); rec.Code != 200 || body != "[]" {
		t.Fatalf("GET /api/bans with none: %d %q, want 200 []", rec.Code, body)
	}
	rec = do(t, h, "GET", "/api/nodes")
	if body := strings.TrimSpace(rec.Body.String()); rec.Code != 200 || body != "[]" {
		t.Fatalf("GET /api/nodes without a cluster: %d %q, want 200 []", rec.Code, body)
	}
	rec = do(t, h, "POST", "/api/nodes")
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /api/nodes: %d, Allow %q; want 405 with Allow: GET, HEAD", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestAPIHangup(t *testing.T) {
	calls := admintest.SampleCalls()
	h, _ := newTestAdmin(t, calls, &admintest.Registrations{})
	if rec := do(t, h, "DELETE", "/api/calls/aaaa"); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("status %d body %q, want 204 and no body", rec.Code, rec.Body)
	}
	if !slices.Equal(calls.HungUp(), []string{"aaaa"}) {
		t.Fatalf("hung up %v", calls.HungUp())
	}
	rec := do(t, h, "DELETE", "/api/calls/aaaa")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("second hangup: status %d, want 404", rec.Code)
	}
	if e := decode[admin.ErrorBody](t, rec); !strings.Contains(e.Error, `"aaaa"`) {
		t.Fatalf("error %q does not name the call", e.Error)
	}
}

func TestAPIRegistrations(t *testing.T) {
	now := time.Now()
	regs := admintest.SampleRegistrations(now)
	h, _ := newTestAdmin(t, &admintest.Calls{}, regs)
	rec := do(t, h, "GET", "/api/registrations")
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	got := decode[[]map[string]any](t, rec)
	if len(got) != 2 || got[0]["user"] != "1001" || got[1]["user"] != "1002" {
		t.Fatalf("want bindings by user, got %v", got)
	}
	for _, key := range []string{"user", "contact", "source", "transport", "expires", "reachable", "rtt_ns"} {
		if _, ok := got[0][key]; !ok {
			t.Errorf("binding has no %q: %v", key, got[0])
		}
	}
	if got[0]["reachable"] != "yes" || got[1]["reachable"] != "no" {
		t.Errorf("reachability %v, %v", got[0]["reachable"], got[1]["reachable"])
	}

	rec = do(t, h, "DELETE", "/api/registrations/1002")
	if rec.Code != 200 || decode[admin.RemovedBody](t, rec).Removed != 1 {
		t.Fatalf("remove 1002: status %d body %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "DELETE", "/api/registrations/1002")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("remove 1002 again: status %d, want 404", rec.Code)
	}
	if e := decode[admin.ErrorBody](t, rec); !strings.Contains(e.Error, `"1002"`) {
		t.Fatalf("error %q does not name the user", e.Error)
	}
}

// TestAPIBans: GET /api/bans lists the bans oldest expiry first with
// address, until and reason; DELETE /api/bans/{addr} lifts one (204), a
// second time finds none (404), and an address that is no IP address is
// refused (400) without asking the guard.
func TestAPIBans(t *testing.T) {
	bans := admintest.SampleBans()
	h, _ := newTestAdmin(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithBans(bans))
	rec := do(t, h, "GET", "/api/bans")
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	got := decode[[]map[string]any](t, rec)
	if len(got) != 2 || got[0]["address"] != "203.0.113.9" || got[1]["address"] != "2001:db8::7" {
		t.Fatalf("want bans oldest expiry first, got %v", got)
	}
	if got[0]["reason"] != "challenges unanswered" || got[1]["reason"] != "authentication failures" {
		t.Errorf("reasons %v, %v", got[0]["reason"], got[1]["reason"])
	}
	until, err := time.Parse(time.RFC3339, got[0]["until"].(string))
	if err != nil || !until.Equal(admintest.Start.Add(5*time.Minute)) {
		t.Errorf("until %v (%v), want %v", got[0]["until"], err, admintest.Start.Add(5*time.Minute))
	}

	if rec := do(t, h, "DELETE", "/api/bans/203.0.113.9"); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("unban 203.0.113.9: status %d body %q, want 204 and no body", rec.Code, rec.Body)
	}
	rec = do(t, h, "DELETE", "/api/bans/203.0.113.9")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unban 203.0.113.9 again: status %d, want 404", rec.Code)
	}
	if e := decode[admin.ErrorBody](t, rec); !strings.Contains(e.Error, "203.0.113.9") {
		t.Fatalf("error %q does not name the address", e.Error)
	}
	if rec := do(t, h, "DELETE", "/api/bans/2001:db8::7"); rec.Code != http.StatusNoContent {
		t.Fatalf("unban 2001:db8::7: status %d body %q, want 204", rec.Code, rec.Body)
	}
	if !slices.Equal(bans.Unbanned(), []string{"203.0.113.9", "2001:db8::7"}) {
		t.Fatalf("unbanned %v", bans.Unbanned())
	}
	if rec := do(t, h, "GET", "/api/bans"); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("GET /api/bans after lifting both: %q, want []", rec.Body)
	}

	// The fake would lift a ban on any string: a 400 shows the API did
	// not ask it.
	odd := admintest.NewBans(guard.Ban{Address: "bogus"}, guard.Ban{Address: "10.0.0.0/8"}, guard.Ban{Address: "host.example"})
	h, _ = newTestAdmin(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithBans(odd))
	for _, addr := range []string{"bogus", "10.0.0.0%2F8", "host.example", "1.2.3.4.5", "999.1.1.1"} {
		rec := do(t, h, "DELETE", "/api/bans/"+addr)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("DELETE /api/bans/%s: status %d, want 400", addr, rec.Code)
			continue
		}
		if e := decode[admin.ErrorBody](t, rec); !strings.Contains(e.Error, "not an IP address") {
			t.Errorf("DELETE /api/bans/%s: error %q", addr, e.Error)
		}
	}
	if len(odd.Unbanned()) != 0 {
		t.Fatalf("malformed addresses reached the guard: %v", odd.Unbanned())
	}
}

func TestAPIMethodsAndPaths(t *testing.T) {
	h, _ := newTestAdmin(t, admintest.SampleCalls(), admintest.SampleRegistrations(time.Now()), admin.WithBans(admintest.SampleBans()))
	tests := []struct {
		method, path string
		code         int
		allow        string
	}{
		{"POST", "/api/calls", 405, "GET, HEAD"},
		{"DELETE", "/api/calls", 405, "GET, HEAD"},
		{"GET", "/api/calls/aaaa", 405, "DELETE"},
		{"PUT", "/api/registrations", 405, "GET, HEAD"},
		{"POST", "/api/registrations/1001", 405, "DELETE"},
		{"POST", "/api/bans", 405, "GET, HEAD"},
		{"DELETE", "/api/bans", 405, "GET, HEAD"},
		{"GET", "/api/bans/203.0.113.9", 405, "DELETE"},
		{"DELETE", "/api/bans/203.0.113.9/extra", 404, ""},
		{"GET", "/api/nothing", 404, ""},
		{"DELETE", "/api/calls/aaaa/extra", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := do(t, h, tt.method, tt.path)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d", rec.Code, tt.code)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if e := decode[admin.ErrorBody](t, rec); e.Error == "" {
				t.Errorf("no error message")
			}
		})
	}
}
