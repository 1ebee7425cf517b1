package config

import (
	"strings"
	"testing"
)

func TestCaptureKeys(t *testing.T) {
	c, err := Parse([]byte("capture:\n  hep: collector.lab:9060\n  hep_id: 2001\n  hep_password: s3cret\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Capture.HEP != "collector.lab:9060" || c.Capture.HEPID != 2001 || c.Capture.HEPPassword != "s3cret" {
		t.Fatalf("capture = %+v", c.Capture)
	}
	d, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if d.Capture.HEP != "" {
		t.Fatalf("HEP capture is on by default: %q", d.Capture.HEP)
	}
	for _, tt := range []struct{ name, yaml, key string }{
		{"no port", "capture:\n  hep: 127.0.0.1\n", "capture.hep"},
		{"port zero", "capture:\n  hep: 127.0.0.1:0\n", "capture.hep"},
		{"no host", "capture:\n  hep: :9060\n", "capture.hep"},
		{"negative id", "capture:\n  hep_id: -1\n", "capture.hep_id"},
		{"id past 32 bits", "capture:\n  hep_id: 4294967296\n", "capture.hep_id"},
		{"password on two lines", "capture:\n  hep_password: \"a\\nb\"\n", "capture.hep_password"},
	} {
		_, err := Parse([]byte(tt.yaml), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.key+":") {
			t.Errorf("%s: error %v does not name %s", tt.name, err, tt.key)
		}
	}
}
