package registrar

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-sip/parley/config"
)

// TestPasswords: configured passwords are kept, missing ones made up once
// and reused, so that a caller shows each made-up password on the start
// that made it only.
func TestPasswords(t *testing.T) {
	users := []config.User{
		{Username: "1001", Password: "s3cret-in-config"},
		{Username: "1003"},
		{Username: "1002"},
	}
	dir := filepath.Join(t.TempDir(), "store")

	pw, gen, err := Passwords(dir, users)
	if err != nil {
		t.Fatal(err)
	}
	if pw["1001"] != "s3cret-in-config" {
		t.Errorf("configured password replaced: %q", pw["1001"])
	}
	if len(pw["1002"]) < 16 || len(pw["1003"]) < 16 || pw["1002"] == pw["1003"] {
		t.Errorf("generated passwords weak or equal: %q %q", pw["1002"], pw["1003"])
	}
	if !slices.Equal(gen.New, []string{"1002", "1003"}) || len(gen.Kept) != 0 {
		t.Errorf("first start: generated %+v, want New [1002 1003]", gen)
	}
	path := filepath.Join(dir, PasswordsFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "s3cret-in-config") {
		t.Errorf("%s holds a configured password:\n%s", PasswordsFile, b)
	}

	// A later start reuses them, and makes up one only for a user added
	// since.
	users = append(users, config.User{Username: "1004"})
	pw2, gen2, err := Passwords(dir, users)
	if err != nil {
		t.Fatal(err)
	}
	if pw2["1002"] != pw["1002"] || pw2["1003"] != pw["1003"] {
		t.Errorf("passwords not reused: %v then %v", pw, pw2)
	}
	if pw2["1004"] == "" || !slices.Equal(gen2.New, []string{"1004"}) || !slices.Equal(gen2.Kept, []string{"1002", "1003"}) {
		t.Errorf("second start: %v %+v; want New [1004], Kept [1002 1003]", pw2, gen2)
	}
	fi2, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	// A third start makes up nothing and leaves the file alone.
	_, gen3, err := Passwords(dir, users)
	if err != nil {
		t.Fatal(err)
	}
	if len(gen3.New) != 0 || !slices.Equal(gen3.Kept, []string{"1002", "1003", "1004"}) {
		t.Errorf("third start: %+v, want all kept", gen3)
	}
	if fi3, err := os.Stat(path); err != nil || !os.SameFile(fi2, fi3) {
		t.Errorf("third start rewrote %s", PasswordsFile)
	}

	// No store directory: made up for this run only, nothing written.
	pw4, gen4, err := Passwords("", users)
	if err != nil {
		t.Fatal(err)
	}
	if pw4["1002"] == "" || pw4["1002"] == pw["1002"] {
		t.Errorf("per-run password %q", pw4["1002"])
	}
	if !slices.Equal(gen4.New, []string{"1002", "1003", "1004"}) || len(gen4.Kept) != 0 {
		t.Errorf("no store: %+v, want every made-up password new", gen4)
	}
}

// TestPasswordsDigestHashUsers: a user configured with ha1 or ha1_sha256
// and no password gets none, not even one kept from before its hash was
// configured; its map entry is absent.
func TestPasswordsDigestHashUsers(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Passwords(dir, []config.User{{Username: "1002"}}); err != nil {
		t.Fatal(err)
	}
	users := []config.User{
		{Username: "1001", HA1: strings.Repeat("a", 32)},
		{Username: "1002", HA1SHA256: strings.Repeat("b", 64)},
		{Username: "1003", HA1: strings.Repeat("c", 32), HA1SHA256: strings.Repeat("d", 64)},
		{Username: "1004"},
	}
	for _, d := range []string{dir, ""} {
		pw, gen, err := Passwords(d, users)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"1001", "1002", "1003"} {
			if p, ok := pw[u]; ok {
				t.Errorf("dir %q: user %s with a digest hash got password %q", d, u, p)
			}
		}
		if pw["1004"] == "" || !slices.Equal(append(gen.New, gen.Kept...), []string{"1004"}) {
			t.Errorf("dir %q: %v %+v, want a password for 1004 only", d, pw, gen)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, PasswordsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "1001") || strings.Contains(string(b), "1003") {
		t.Errorf("%s holds passwords for digest-hash users:\n%s", PasswordsFile, b)
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
