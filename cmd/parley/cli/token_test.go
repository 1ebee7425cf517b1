package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
	"github.com/parley-sip/parley/dialog"
)

// TestCLITokenDiscovery: parley hangup finds the admin token in -token,
// else $PARLEY_ADMIN_TOKEN, else admin.token of -config, else the token
// file in that config's store.path, else in ./data; the first one found
// is the one sent. Without one the refusal says where it looked.
func TestCLITokenDiscovery(t *testing.T) {
	t.Setenv(tokenEnv, "")
	var snaps []dialog.Snapshot
	for i := range 20 {
		snaps = append(snaps, dialog.Snapshot{ID: fmt.Sprintf("call-%d", i), Start: time.Now()})
	}
	calls := admintest.NewCalls(snaps...)
	addr := apiServer(t, calls, &admintest.Registrations{})
	dir := t.TempDir()
	const wrong = "ffffffffffffffffffffffffffffffff"

	// writeConfig writes a config with admin.token tok and store.path
	// store, and returns its path.
	writeConfig := func(name, tok, store string) string {
		path := filepath.Join(dir, name)
		yaml := "admin:\n  listen: " + addr + "\n  token: '" + tok + "'\nstore:\n  path: '" + store + "'\n"
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// keep writes tok as the token file of the store directory store.
	keep := func(store, tok string) {
		if err := os.MkdirAll(store, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(admin.TokenPath(store), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	goodStore, wrongStore := filepath.Join(dir, "good"), filepath.Join(dir, "wrong")
	keep(goodStore, testToken)
	keep(wrongStore, wrong)

	tests := []struct {
		name string
		env  string
		args []string
		ok   bool
		err  string // in stderr when refused
	}{
		{"-token wins over the environment", wrong, []string{"-admin", addr, "-token", testToken}, true, ""},
		{"a wrong -token", testToken, []string{"-admin", addr, "-token", wrong}, false, "wrong admin token (the token sent came from -token)"},
		{"the environment wins over the config", testToken, []string{"-config", writeConfig("a.yaml", wrong, wrongStore)}, true, ""},
		{"admin.token wins over the store", "", []string{"-config", writeConfig("b.yaml", testToken, wrongStore)}, true, ""},
		{"the store of -config", "", []string{"-config", writeConfig("c.yaml", "", goodStore)}, true, ""},
		{"the store of -config with -admin", "", []string{"-admin", addr, "-config", writeConfig("d.yaml", "", goodStore)}, true, ""},
		{"a stale token file", "", []string{"-config", writeConfig("e.yaml", "", wrongStore)}, false, "came from " + admin.TokenPath(wrongStore)},
		{"no token file", "", []string{"-config", writeConfig("f.yaml", "", filepath.Join(dir, "none"))}, false, "found no admin token"},
		{"memory only", "", []string{"-config", writeConfig("g.yaml", "", "")}, false, "store.path is empty"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, tt.env)
			id := snaps[i].ID
			code, out, errs := parley(t, append([]string{"hangup", id}, tt.args...)...)
			hungUp := slices.Contains(calls.HungUp(), id)
			if tt.ok {
				if code != 0 || !hungUp {
					t.Fatalf("exit %d, stdout %q, stderr %q, hung up %v; want 0 and %s hung up", code, out, errs, calls.HungUp(), id)
				}
				return
			}
			if code != 1 || !strings.Contains(errs, tt.err) || hungUp {
				t.Fatalf("exit %d, stderr %q, hung up %v; want 1, %q and %s still up", code, errs, calls.HungUp(), tt.err, id)
			}
		})
	}

	// Without -config: the default config's store.path, ./data, in the
	// directory the command runs in, where parley keeps it by default.
	t.Run("./data", func(t *testing.T) {
		t.Setenv(tokenEnv, "")
		work := filepath.Join(dir, "work")
		keep(filepath.Join(work, "data"), testToken)
		t.Chdir(work)
		if code, _, errs := parley(t, "hangup", "call-18", "-admin", addr); code != 0 || !slices.Contains(calls.HungUp(), "call-18") {
			t.Fatalf("exit %d, stderr %q, hung up %v", code, errs, calls.HungUp())
		}
		t.Chdir(dir)
		code, _, errs := parley(t, "hangup", "call-19", "-admin", addr)
		if code != 1 || !strings.Contains(errs, "-token") || !strings.Contains(errs, tokenEnv) || !strings.Contains(errs, filepath.Join("data", admin.TokenFile)) {
			t.Fatalf("without a token: exit %d, stderr %q; want 1 and where to put one", code, errs)
		}
	})

	// Reading needs no token.
	if code, out, errs := parley(t, "calls", "-admin", addr); code != 0 || !strings.Contains(out, "ID") {
		t.Fatalf("calls without a token: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
