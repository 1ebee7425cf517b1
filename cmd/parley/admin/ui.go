package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// ui holds the dashboard: plain HTML, CSS and JavaScript, served as they
// are. There is no build step and nothing is fetched from elsewhere, as
// a lab without internet must work.
//
//go:embed ui/index.html ui/app.js ui/style.css
var ui embed.FS

// uiCSP is the dashboard's Content-Security-Policy: its own script, style
// and event stream and nothing else, no inline code, and no framing, so
// that another page can neither inject into it nor click its buttons.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// registerDashboard adds the dashboard to mux:
//
//	GET /             the page (ui/index.html)
//	GET /ui/...       its script and style sheet
//	GET /api/events   the live feed the page reads (serveEvents)
func (s *Server) registerDashboard(mux *http.ServeMux) {
	sub, err := fs.Sub(ui, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		uiHeaders(w)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /ui/", func(w http.ResponseWriter, r *http.Request) {
		uiHeaders(w)
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /api/events", s.serveEvents)
	mux.HandleFunc("/api/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, r.Method+" not allowed on /api/events; allowed: GET, HEAD")
	})
}

// uiHeaders sets the headers of every dashboard file.
func uiHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Embedded files carry no dates to revalidate by, and a new binary
	// may bring new ones: the browser fetches them again each time, as
	// they are small.
	h.Set("Cache-Control", "no-cache")
}
