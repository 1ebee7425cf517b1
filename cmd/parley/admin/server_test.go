package admin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// get fetches url without keeping the connection, and returns the status
// and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, string(b)
}

// TestServeOverTCP runs a Server on a real listener: every kind of
// endpoint answers, and Serve returns nil and closes the listener when its
// context ends.
func TestServeOverTCP(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_test_events_total", Help: "Test events."}))
	srv, err := admin.New("127.0.0.1:0", admin.WithMetrics(reg), admin.WithPProf(true),
		admin.WithCalls(admintest.SampleCalls()), admin.WithRegistrations(admintest.SampleRegistrations(time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	base := "http://" + srv.Addr()
	tests := []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "not ready"},
		{"/metrics", 200, "parley_test_events_total 0"},
		{"/api/calls", 200, `"id": "aaaa"`},
		{"/api/registrations", 200, `"user": "1001"`},
		{"/api/nothing", 404, `"error"`},
		{"/debug/pprof/", 200, "goroutine"},
	}
	for _, tt := range tests {
		if code, body := get(t, base+tt.path); code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s: %d %q, want %d and %q", tt.path, code, body, tt.code, tt.body)
		}
	}
	srv.SetReady()
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("GET /readyz after SetReady: %d %q", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if c, err := net.Dial("tcp", srv.Addr()); err == nil {
		c.Close()
		t.Error("listener still open after Serve returned")
	}
}

func TestNewBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := admin.New(ln.Addr().String()); err == nil {
		t.Fatal("New on a busy address: want an error")
	}
}

// TestWithoutAddress checks that a Server with no address serves nothing
// but still has a Handler, and that Serve just waits for its context.
func TestWithoutAddress(t *testing.T) {
	srv, err := admin.New("")
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != "" {
		t.Errorf("Addr %q, want empty", srv.Addr())
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v before its context ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v, want nil", err)
	}
	if rec := do(t, srv.Handler(), "GET", "/healthz"); rec.Code != 200 {
		t.Errorf("/healthz: %d", rec.Code)
	}
}

// TestDefaults checks what a Server built without options answers: no
// calls, no registrations, no bans, an empty registry, no profiler, and no
// change of state without a token.
func TestDefaults(t *testing.T) {
	srv, err := admin.New("")
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	for _, path := range []string{"/api/calls", "/api/registrations", "/api/bans"} {
		rec := do(t, h, "GET", path)
		if body := strings.TrimSpace(rec.Body.String()); rec.Code != 200 || body != "[]" {
			t.Errorf("GET %s: %d %q, want 200 []", path, rec.Code, body)
		}
	}
	for _, path := range []string{"/api/calls/aaaa", "/api/registrations/1001", "/api/bans/192.0.2.1"} {
		if rec := do(t, h, "DELETE", path); rec.Code != http.StatusUnauthorized {
			t.Errorf("DELETE %s without WithToken: %d, want 401", path, rec.Code)
		}
	}
	if rec := do(t, h, "GET", "/metrics"); rec.Code != 200 {
		t.Errorf("GET /metrics: %d, want 200", rec.Code)
	}
	if rec := do(t, h, "GET", "/debug/pprof/"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/: %d, want 404", rec.Code)
	}

	srv, err = admin.New("", admin.WithToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/calls/aaaa", "/api/registrations/1001", "/api/bans/192.0.2.1"} {
		if rec := do(t, srv.Handler(), "DELETE", path); rec.Code != http.StatusNotFound {
			t.Errorf("DELETE %s: %d, want 404", path, rec.Code)
		}
	}
}

func TestOptionsRejectNil(t *testing.T) {
	for name, opt := range map[string]admin.Option{
		"WithMetrics":       admin.WithMetrics(nil),
		"WithCalls":         admin.WithCalls(nil),
		"WithRegistrations": admin.WithRegistrations(nil),
		"WithBans":          admin.WithBans(nil),
		"WithToken":         admin.WithToken(""),
	} {
		if _, err := admin.New("", opt); !errors.Is(err, admin.ErrBadOption) {
			t.Errorf("%s(nil): error %v, want ErrBadOption", name, err)
		}
	}
}
