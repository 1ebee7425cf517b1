package admin_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-sip/parley/cmd/parley/admin"
)

// TestDashboardAssets: GET / is the dashboard page, every file it refers
// to is served from the binary with its type, and all of them carry the
// Content-Security-Policy that allows this server only, and no framing.
func TestDashboardAssets(t *testing.T) {
	srv, err := admin.New("")
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	page := doWith(t, h, http.MethodGet, "/", "localhost:9060", "")
	if page.Code != http.StatusOK || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q, want 200 text/html", page.Code, page.Header().Get("Content-Type"))
	}
	html := page.Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 2 {
		t.Fatalf("GET /: the page refers to %d files, want its script and style sheet:\n%s", len(refs), html)
	}
	types := map[string]string{".js": "text/javascript", ".css": "text/css"}
	for _, ref := range refs {
		path := ref[1]
		if !strings.HasPrefix(path, "/ui/") {
			t.Errorf("the page refers to %q, outside this server's /ui/ (no CDN: a lab has no internet)", path)
			continue
		}
		rec := doWith(t, h, http.MethodGet, path, "localhost:9060", "")
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d, %d bytes; want the embedded file", path, rec.Code, rec.Body.Len())
			continue
		}
		for ext, ct := range types {
			if strings.HasSuffix(path, ext) && !strings.HasPrefix(rec.Header().Get("Content-Type"), ct) {
				t.Errorf("GET %s: Content-Type %q, want %s", path, rec.Header().Get("Content-Type"), ct)
			}
		}
		if strings.Contains(rec.Body.String(), "http://") || strings.Contains(rec.Body.String(), "https://") {
			t.Errorf("%s names another server; the dashboard must work without internet", path)
		}
	}
	for _, path := range []string{"/", "/ui/app.js", "/ui/style.css"} {
		rec := doWith(t, h, http.MethodGet, path, "localhost:9060", "")
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if rec.Header().Get("X-Frame-Options") != "DENY" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Frame-Options %q X-Content-Type-Options %q", path, rec.Header().Get("X-Frame-Options"), rec.Header().Get("X-Content-Type-Options"))
		}
	}
	if regexp.MustCompile(`<script>|<style| style=| on[a-z]+=`).MatchString(html) {
		t.Errorf("the page has inline script or style, which its Content-Security-Policy refuses")
	}
	if rec := doWith(t, h, http.MethodGet, "/ui/nothing.js", "localhost:9060", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /ui/nothing.js: %d, want 404", rec.Code)
	}
	if rec := doWith(t, h, http.MethodGet, "/", "evil.example", ""); rec.Code != http.StatusForbidden {
		t.Errorf("GET / with a foreign Host: %d, want 403 (DNS rebinding)", rec.Code)
	}
}

// TestDashboardScript: the script reads the live feed and calls the
// endpoints the dashboard's buttons stand for, with the bearer token, and
// renders what the network sent as text only.
func TestDashboardScript(t *testing.T) {
	srv, err := admin.New("")
	if err != nil {
		t.Fatal(err)
	}
	js := doWith(t, srv.Handler(), http.MethodGet, "/ui/app.js", "localhost:9060", "").Body.String()
	for _, want := range []string{
		"new EventSource('/api/events')",
		"'/api/calls/' + encodeURIComponent(",
		"'/api/users/' + encodeURIComponent(",
		"'/kick'",
		"'Bearer ' + ",
		"localStorage",
	} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js has no %s", want)
		}
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s; what the network sends must be set as text", bad)
		}
	}
}
