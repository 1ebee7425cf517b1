package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-sip/parley/config"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("sip:\n  realm: example.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("sessions:\n  min_se: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-check-config"}, 0, "configuration OK", ""},
		{[]string{"-check-config", "-config", good}, 0, "configuration OK", ""},
		{[]string{"-check-config", "-config", bad}, 1, "", "sessions.min_se"},
		{[]string{"-check-config", "-config", filepath.Join(dir, "missing.yaml")}, 1, "", "missing.yaml"},
		{[]string{"-no-such-flag"}, 2, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Fatalf("stdout %q, stderr %q", out.String(), errb.String())
			}
		})
	}
}

func TestPrintDefaultConfigRoundTrips(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-print-default-config"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := config.Parse(out.Bytes(), "printed"); err != nil {
		t.Fatalf("printed default does not load: %v", err)
	}
}

// TestRunDispatchesCommands checks that a first argument that is not a
// flag runs an operator command (package cli tests the commands).
func TestRunDispatchesCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q; want 2 and the unknown command", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"calls", "-admin", "127.0.0.1:1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "cannot reach the admin API") {
		t.Fatalf("exit %d, stderr %q; want 1 and the API unreachable", code, errb.String())
	}
}
