package main

import (
	"strings"
	"testing"

	"github.com/parley-sip/parley/config"
)

// TestRTPNote checks when the welcome warns about rtp.address: only for a
// loopback address while phones elsewhere reach parley's SIP.
func TestRTPNote(t *testing.T) {
	def, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if note := rtpNote(def, "192.168.1.20"); note != "" {
		t.Errorf("the default config warns:\n%s", note)
	}
	tests := []struct {
		address, host string
		warns         bool
	}{
		{"", "192.168.1.20", false},
		{"127.0.0.1", "192.168.1.20", true},
		{"127.0.0.1", "127.0.0.1", false},
		{"::1", "192.168.1.20", true},
		{"192.168.1.20", "192.168.1.20", false},
	}
	for _, tt := range tests {
		cfg := *def
		cfg.RTP.Address = tt.address
		note := rtpNote(&cfg, tt.host)
		if got := note != ""; got != tt.warns {
			t.Errorf("rtp.address %q, SIP at %s: note %q, want a warning: %t", tt.address, tt.host, note, tt.warns)
		}
		if tt.warns && !strings.Contains(note, "rtp.address is "+tt.address) {
			t.Errorf("note does not name rtp.address %s: %q", tt.address, note)
		}
	}
}
