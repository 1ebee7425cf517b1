package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-sip/parley/dialog/transport/tlstest"
)

// TestTLSListener: tls:// listens on 5061 when no port is given, and
// needs sip.tls.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, 1, cert, key)
	c, err := Parse([]byte(fmt.Sprintf("sip:\n  listen: [udp://127.0.0.1:5060, tls://127.0.0.1, 'tls://[::1]:5071']\n  tls: {cert: %s, key: %s}\n", cert, key)), "x")
	if err != nil {
		t.Fatal(err)
	}
	ls := c.Listeners()
	if len(ls) != 3 || ls[1] != (Listener{Network: "tls", Addr: "127.0.0.1:5061"}) || ls[2] != (Listener{Network: "tls", Addr: "[::1]:5071"}) {
		t.Fatalf("listeners = %+v", ls)
	}
	if !c.HasTLSListener() {
		t.Fatal("HasTLSListener = false")
	}
	if _, err := c.SIP.TLS.Load(); err != nil {
		t.Fatal(err)
	}
}

// TestBadTLSConfigNamesKeyAndFile: each way sip.tls can be wrong names
// the key, and the file when there is one.
func TestBadTLSConfigNamesKeyAndFile(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, 1, cert, key)
	other := filepath.Join(dir, "other-key.pem")
	ca.Issue(t, 2, filepath.Join(dir, "other.pem"), other)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, cert, key, wantKey, wantFile string
	}{
		{"no cert", "", key, "sip.tls.cert", ""},
		{"no key", cert, "", "sip.tls.key", ""},
		{"missing cert", missing, key, "sip.tls.cert", missing},
		{"missing key", cert, missing, "sip.tls.key", missing},
		{"cert not PEM", key, key, "sip.tls.cert", key},
		{"cert not DER", garbage, key, "sip.tls.cert", garbage},
		{"key not PEM", cert, garbage, "sip.tls.key", garbage},
		{"key of another cert", cert, other, "sip.tls.key", other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := fmt.Sprintf("sip:\n  listen: [tls://127.0.0.1:5061]\n  tls: {cert: '%s', key: '%s'}\n", tt.cert, tt.key)
			_, err := Parse([]byte(y), "x")
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != tt.wantKey {
				t.Fatalf("error %v, want one naming %s", err, tt.wantKey)
			}
			if !strings.Contains(err.Error(), tt.wantFile) {
				t.Fatalf("error %q does not name the file %s", err, tt.wantFile)
			}
		})
	}
}
