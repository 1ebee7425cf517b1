package dialog

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules keeps parley's layers apart, as CoreDNS's import tests
// do: each rule names a package and the parley packages it may depend on
// (directly or not). It reads the real build graph from go list, so a new
// import that breaks a rule fails here.
func TestImportRules(t *testing.T) {
	const mod = "github.com/parley-sip/parley/"
	rules := []struct {
		pkg     string
		allowed []string // parley packages it may depend on
	}{
		{"config", nil},
		{"dialog/sipmsg", nil},
		{"dialog/transport", []string{"config", "dialog/sipmsg"}},
		{"dialog/transaction", []string{"dialog/sipmsg"}},
		{"dialog/guard", []string{"config"}},
		{"dialog/store", nil},
		{"dialog/capture", nil},
		{"registrar", []string{"config", "dialog/sipmsg"}},
		{"media", []string{"config", "dialog/sipmsg"}},
		// Audio work beneath media: codecs are a leaf; the rooms' engine
		// and playback sit on media and the codecs, never on dialog.
		{"media/audio", nil},
		{"media/room", []string{"config", "dialog/sipmsg", "media", "media/audio"}},
		{"media/play", []string{"config", "dialog/sipmsg", "media", "media/audio"}},
		// The B2BUA: its own layers, never a service, the registrar or
		// media (it reaches them through its interfaces).
		{"dialog/resolve", nil},
		{"dialog", []string{"config", "dialog/sipmsg", "dialog/transport", "dialog/transaction", "dialog/resolve"}},
		// The trunks sit on the B2BUA, whose transactions send for them.
		{"dialog/trunk", []string{"config", "dialog", "dialog/sipmsg", "dialog/transport", "dialog/transaction", "dialog/resolve"}},
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", "github.com/parley-sip/parley/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		deps[strings.TrimPrefix(p.ImportPath, mod)] = p.Deps
	}
	for _, r := range rules {
		d, ok := deps[r.pkg]
		if !ok {
			t.Errorf("package %s not found by go list", r.pkg)
			continue
		}
		for _, dep := range d {
			rel, ours := strings.CutPrefix(dep, mod)
			if !ours {
				continue
			}
			allowed := false
			for _, a := range r.allowed {
				allowed = allowed || rel == a
			}
			if !allowed {
				t.Errorf("%s depends on %s; it may depend only on %v", r.pkg, rel, r.allowed)
			}
		}
	}
	// Nothing but cmd imports cmd, and only cmd imports a service.
	for pkg, d := range deps {
		for _, dep := range d {
			rel, ours := strings.CutPrefix(dep, mod)
			if !ours {
				continue
			}
			if strings.HasPrefix(rel, "cmd/") && !strings.HasPrefix(pkg, "cmd/") {
				t.Errorf("%s depends on %s", pkg, rel)
			}
			if strings.HasPrefix(rel, "dialog/service/") && !strings.HasPrefix(pkg, "cmd/") && !strings.HasPrefix(pkg, "dialog/service/") {
				t.Errorf("%s depends on the service %s: services are registered by cmd", pkg, rel)
			}
		}
	}
}
