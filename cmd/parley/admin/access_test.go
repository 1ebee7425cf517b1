package admin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
)

// TestToken: every request but GET and HEAD needs the token, compared
// exactly; missing or wrong gets 401 with a Bearer challenge and a JSON
// error, and changes nothing. GETs need none.
func TestToken(t *testing.T) {
	calls := admintest.SampleCalls()
	regs := admintest.SampleRegistrations(time.Now())
	bans := admintest.SampleBans()
	h, _ := newTestAdmin(t, calls, regs, admin.WithBans(bans))
	refused := []struct {
		name, method, path, auth string
	}{
		{"no token", "DELETE", "/api/calls/aaaa", ""},
		{"wrong token", "DELETE", "/api/calls/aaaa", "Bearer wrong"},
		{"token with a byte more", "DELETE", "/api/calls/aaaa", "Bearer " + testToken + "0"},
		{"a prefix of the token", "DELETE", "/api/calls/aaaa", "Bearer " + testToken[:len(testToken)-1]},
		{"the token without a scheme", "DELETE", "/api/calls/aaaa", testToken},
		{"the token as Basic", "DELETE", "/api/calls/aaaa", "Basic " + testToken},
		{"registration, no token", "DELETE", "/api/registrations/1001", ""},
		{"POST, no token", "POST", "/api/calls", ""},
		{"PUT, no token", "PUT", "/api/registrations/1001", ""},
		{"PATCH, no token", "PATCH", "/api/calls/aaaa", ""},
		{"ban, no token", "DELETE", "/api/bans/203.0.113.9", ""},
		{"ban, wrong token", "DELETE", "/api/bans/203.0.113.9", "Bearer wrong"},
		{"unknown API path, no token", "POST", "/api/nothing", ""},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			rec := doWith(t, h, tt.method, tt.path, "localhost:9060", tt.auth)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("%s %s: status %d, want 401", tt.method, tt.path, rec.Code)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="parley"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if e := decode[admin.ErrorBody](t, rec); e.Error == "" {
				t.Errorf("no error message")
			}
		})
	}
	if len(calls.HungUp()) != 0 || len(regs.All()) != 2 || len(bans.Unbanned()) != 0 {
		t.Fatalf("refused requests changed state: hung up %v, %d bindings left, unbanned %v", calls.HungUp(), len(regs.All()), bans.Unbanned())
	}

	for _, path := range []string{"/api/calls", "/api/registrations", "/api/bans", "/metrics", "/healthz"} {
		for _, method := range []string{"GET", "HEAD"} {
			if rec := doWith(t, h, method, path, "localhost:9060", ""); rec.Code != http.StatusOK {
				t.Errorf("%s %s without a token: %d, want 200", method, path, rec.Code)
			}
		}
	}

	// The scheme is case-insensitive (RFC 7235 §2.1).
	if rec := doWith(t, h, "DELETE", "/api/calls/aaaa", "localhost:9060", "bearer "+testToken); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE with the token: %d %s, want 204", rec.Code, rec.Body)
	}
	if rec := doWith(t, h, "DELETE", "/api/registrations/1001", "localhost:9060", "Bearer "+testToken); rec.Code != http.StatusOK {
		t.Fatalf("DELETE registration with the token: %d %s, want 200", rec.Code, rec.Body)
	}
	if rec := doWith(t, h, "DELETE", "/api/bans/203.0.113.9", "localhost:9060", "Bearer "+testToken); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE ban with the token: %d %s, want 204", rec.Code, rec.Body)
	}
	if !slices.Equal(calls.HungUp(), []string{"aaaa"}) || len(regs.All()) != 1 || !slices.Equal(bans.Unbanned(), []string{"203.0.113.9"}) {
		t.Fatalf("with the token: hung up %v, %d bindings left, unbanned %v; want aaaa, 1 and 203.0.113.9", calls.HungUp(), len(regs.All()), bans.Unbanned())
	}
}

// send sends method path to the Server at addr with the Host header host
// and auth (none when empty), and returns the response's status, headers
// and body.
func send(t *testing.T, addr, method, path, host, auth string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, path, host, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

// TestHostCheck runs a Server on a real loopback listener: a Host that is
// not one of the listener's names gets 403 (DNS rebinding), its own names
// with its port are served, and the probes answer whatever the Host.
func TestHostCheck(t *testing.T) {
	calls := admintest.SampleCalls()
	srv, err := admin.New("127.0.0.1:0", admin.WithCalls(calls), admin.WithToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	addr := srv.Addr()
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		method, path, host string
		code               int
	}{
		{"GET", "/api/calls", "evil.example", 403},
		{"GET", "/api/calls", "evil.example:" + port, 403},
		{"GET", "/metrics", "evil.example:" + port, 403},
		{"GET", "/debug/pprof/", "evil.example:" + port, 403},
		{"DELETE", "/api/calls/aaaa", "evil.example:" + port, 403},
		{"GET", "/api/calls", "localhost.evil.example:" + port, 403},
		{"GET", "/api/calls", "localhost:1", 403},
		{"GET", "/api/calls", "127.0.0.1", 403}, // port 80 implied
		{"GET", "/api/calls", "10.1.2.3:" + port, 403},
		{"GET", "/api/calls", "127.0.0.1:" + port, 200},
		{"GET", "/api/calls", "localhost:" + port, 200},
		{"GET", "/api/calls", "LocalHost:" + port, 200},
		{"GET", "/api/calls", "[::1]:" + port, 200},
		{"GET", "/metrics", "localhost:" + port, 200},
		{"GET", "/healthz", "evil.example", 200},
		{"GET", "/readyz", "10.1.2.3:8080", 503}, // not ready yet, but answered
	}
	for _, tt := range tests {
		code, hdr, body := send(t, addr, tt.method, tt.path, tt.host, "Bearer "+testToken)
		if code != tt.code {
			t.Errorf("%s %s with Host %q: %d %q, want %d", tt.method, tt.path, tt.host, code, body, tt.code)
			continue
		}
		if code == 403 && (hdr.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error"`)) {
			t.Errorf("%s %s with Host %q: 403 %q is not a JSON error", tt.method, tt.path, tt.host, body)
		}
	}
	if len(calls.HungUp()) != 0 {
		t.Fatalf("a request with a foreign Host hung up %v", calls.HungUp())
	}
	if code, _, body := send(t, addr, "DELETE", "/api/calls/aaaa", "127.0.0.1:"+port, "Bearer "+testToken); code != http.StatusNoContent {
		t.Fatalf("DELETE with the token and Host 127.0.0.1:%s: %d %q, want 204", port, code, body)
	}
}

// TestPProf: /debug/pprof/ is served only with WithPProf(true).
func TestPProf(t *testing.T) {
	off, _ := newTestAdmin(t, &admintest.Calls{}, &admintest.Registrations{})
	on, _ := newTestAdmin(t, &admintest.Calls{}, &admintest.Registrations{}, admin.WithPProf(true))
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap"} {
		if rec := do(t, off, "GET", path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s with pprof off: %d, want 404", path, rec.Code)
		}
	}
	if rec := do(t, on, "GET", "/debug/pprof/"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("GET /debug/pprof/ with pprof on: %d", rec.Code)
	}
	if rec := do(t, on, "GET", "/debug/pprof/goroutine?debug=1"); rec.Code != 200 {
		t.Errorf("GET /debug/pprof/goroutine with pprof on: %d", rec.Code)
	}
}
