package admin_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parley-sip/parley/cmd/parley/admin"
)

// TestKeepToken: the first start makes a 32-byte random token and keeps it
// in the store directory, mode 0600; later starts read the same one.
func TestKeepToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	tok, created, err := admin.KeepToken(dir)
	if err != nil || !created {
		t.Fatalf("first KeepToken: %q created %v err %v; want a new token", tok, created, err)
	}
	if b, err := hex.DecodeString(tok); err != nil || len(b) != 32 {
		t.Errorf("token %q: want 32 bytes in hex", tok)
	}
	path := filepath.Join(dir, admin.TokenFile)
	if admin.TokenPath(dir) != path {
		t.Errorf("TokenPath %q, want %q", admin.TokenPath(dir), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, created, err := admin.KeepToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second KeepToken: %q created %v err %v; want %q reused", again, created, err, tok)
	}
	if read, err := admin.ReadToken(dir); err != nil || read != tok {
		t.Fatalf("ReadToken: %q %v, want %q", read, err, tok)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("store directory holds %d files, want the token file only", len(entries))
	}
	if admin.NewToken() == admin.NewToken() {
		t.Error("NewToken made the same token twice")
	}
}

// TestKeepTokenRace: starts racing to make the token agree on one.
func TestKeepTokenRace(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	toks := make([]string, n)
	made := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if toks[i], made[i], err = admin.KeepToken(dir); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if toks[i] != toks[0] {
			t.Errorf("start %d got token %q, start 0 %q", i, toks[i], toks[0])
		}
		if made[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d starts say they made the token, want 1", creators)
	}
}

func TestReadTokenMissingOrEmpty(t *testing.T) {
	dir := t.TempDir()
	if _, err := admin.ReadToken(dir); !os.IsNotExist(err) {
		t.Errorf("ReadToken with no file: %v, want not-exist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, admin.TokenFile), []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ReadToken(dir); err == nil {
		t.Error("ReadToken of an empty file: want an error")
	}
	if _, _, err := admin.KeepToken(dir); err == nil {
		t.Error("KeepToken over an empty file: want an error, not a silent new token")
	}
}
