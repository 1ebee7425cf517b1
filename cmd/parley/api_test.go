package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/registrar"
)

// fakeCalls is a callTable holding fixed calls.
type fakeCalls struct {
	mu     sync.Mutex
	calls  []dialog.Snapshot
	hungUp []string
}

func (f *fakeCalls) Calls() []dialog.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeCalls) Hangup(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.calls, func(s dialog.Snapshot) bool { return s.ID == id })
	if i < 0 {
		return false
	}
	f.calls = slices.Delete(f.calls, i, i+1)
	f.hungUp = append(f.hungUp, id)
	return true
}

// fakeRegs is a registrations holding fixed bindings.
type fakeRegs struct {
	mu sync.Mutex
	bs []registrar.Binding
}

func (f *fakeRegs) All() []registrar.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bs)
}

func (f *fakeRegs) RemoveUser(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.bs)
	f.bs = slices.DeleteFunc(f.bs, func(b registrar.Binding) bool { return b.User == user })
	return n - len(f.bs)
}

var t0 = time.Date(2026, 11, 22, 10, 4, 0, 0, time.Local)

func sampleCalls() *fakeCalls {
	return &fakeCalls{calls: []dialog.Snapshot{
		{ID: "bbbb", From: "1002", To: "600", State: "Establishing", Start: t0.Add(time.Minute)},
		{ID: "aaaa", From: "1001", To: "1002", State: "Active", Start: t0, Answer: t0.Add(3 * time.Second),
			Media: &dialog.MediaQuality{Codec: "PCMU", Packets: 995, Lost: 5, Jitter: 2500 * time.Microsecond}},
	}}
}

func sampleRegs(now time.Time) *fakeRegs {
	return &fakeRegs{bs: []registrar.Binding{
		{User: "1002", Contact: "sip:1002@192.168.1.31:5062", Source: "203.0.113.7:40112", Transport: "udp",
			Expires: now.Add(90*time.Second + 400*time.Millisecond), Reachable: registrar.ReachableNo, UserAgent: "baresip"},
		{User: "1001", Contact: "sip:1001@192.168.1.30:5060", Source: "192.168.1.30:5060", Transport: "tcp",
			Expires: now.Add(time.Hour + 400*time.Millisecond), Reachable: registrar.ReachableYes, RTT: 12300 * time.Microsecond},
	}}
}

func newTestAdmin(calls callTable, regs registrations) (http.Handler, *readiness) {
	st := newReadiness()
	return adminMux(prometheus.NewRegistry(), st, calls, regs), st
}

func do(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
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
	h, _ := newTestAdmin(sampleCalls(), &fakeRegs{})
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
	h, _ := newTestAdmin(&fakeCalls{}, &fakeRegs{})
	rec := do(t, h, "GET", "/api/calls")
	if body := strings.TrimSpace(rec.Body.String()); body != "[]" {
		t.Fatalf("body %q, want []", body)
	}
	rec = do(t, h, "GET", "/api/registrations")
	if body := strings.TrimSpace(rec.Body.String()); body != "[]" {
		t.Fatalf("body %q, want []", body)
	}
}

func TestAPIHangup(t *testing.T) {
	calls := sampleCalls()
	h, _ := newTestAdmin(calls, &fakeRegs{})
	if rec := do(t, h, "DELETE", "/api/calls/aaaa"); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("status %d body %q, want 204 and no body", rec.Code, rec.Body)
	}
	if !slices.Equal(calls.hungUp, []string{"aaaa"}) {
		t.Fatalf("hung up %v", calls.hungUp)
	}
	rec := do(t, h, "DELETE", "/api/calls/aaaa")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("second hangup: status %d, want 404", rec.Code)
	}
	if e := decode[apiError](t, rec); !strings.Contains(e.Error, `"aaaa"`) {
		t.Fatalf("error %q does not name the call", e.Error)
	}
}

func TestAPIRegistrations(t *testing.T) {
	now := time.Now()
	regs := sampleRegs(now)
	h, _ := newTestAdmin(&fakeCalls{}, regs)
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
	if rec.Code != 200 || decode[removed](t, rec).Removed != 1 {
		t.Fatalf("remove 1002: status %d body %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "DELETE", "/api/registrations/1002")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("remove 1002 again: status %d, want 404", rec.Code)
	}
	if e := decode[apiError](t, rec); !strings.Contains(e.Error, `"1002"`) {
		t.Fatalf("error %q does not name the user", e.Error)
	}
}

func TestAPIMethodsAndPaths(t *testing.T) {
	h, _ := newTestAdmin(sampleCalls(), sampleRegs(time.Now()))
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
			if e := decode[apiError](t, rec); e.Error == "" {
				t.Errorf("no error message")
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	h, st := newTestAdmin(&fakeCalls{}, &fakeRegs{})
	check := func(code int, body string) {
		t.Helper()
		rec := do(t, h, "GET", "/readyz")
		b, _ := io.ReadAll(rec.Body)
		if rec.Code != code || !strings.Contains(string(b), body) {
			t.Fatalf("/readyz: %d %q, want %d %q", rec.Code, b, code, body)
		}
	}
	check(503, "not ready")
	st.setReady()
	check(200, "ready")
	st.setDraining()
	check(503, "draining")
}
