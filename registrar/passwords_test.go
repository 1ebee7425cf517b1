package registrar

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-sip/parley/config"
)

func TestPasswords(t *testing.T) {
	users := []config.User{
		{Username: "1001", Password: "configured"},
		{Username: "1003"},
		{Username: "1002"},
	}
	dir := filepath.Join(t.TempDir(), "store")

	pw, gen, err := Passwords(dir, users)
	if err != nil {
		t.Fatal(err)
	}
	if pw["1001"] != "configured" {
		t.Errorf("configured password replaced: %q", pw["1001"])
	}
	if len(pw["1002"]) < 16 || len(pw["1003"]) < 16 || pw["1002"] == pw["1003"] {
		t.Errorf("generated passwords weak or equal: %q %q", pw["1002"], pw["1003"])
	}
	if !slices.Equal(gen, []string{"1002", "1003"}) {
		t.Errorf("generated = %v", gen)
	}
	fi, err := os.Stat(filepath.Join(dir, PasswordsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}

	// A later start reuses them; a user added later gets one of its own.
	users = append(users, config.User{Username: "1004"})
	pw2, gen2, err := Passwords(dir, users)
	if err != nil {
		t.Fatal(err)
	}
	if pw2["1002"] != pw["1002"] || pw2["1003"] != pw["1003"] {
		t.Errorf("passwords not reused: %v then %v", pw, pw2)
	}
	if pw2["1004"] == "" || !slices.Equal(gen2, []string{"1002", "1003", "1004"}) {
		t.Errorf("second start: %v %v", pw2, gen2)
	}

	// No store directory: made up for this run only, nothing written.
	pw3, _, err := Passwords("", users)
	if err != nil {
		t.Fatal(err)
	}
	if pw3["1002"] == "" || pw3["1002"] == pw["1002"] {
		t.Errorf("per-run password %q", pw3["1002"])
	}
}

func TestPasswordsBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, PasswordsFile), []byte("[not: a map"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Passwords(dir, []config.User{{Username: "1001"}}); err == nil {
		t.Fatal("broken passwords file accepted")
	}
}
