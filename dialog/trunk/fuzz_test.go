package trunk

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/transport"
)

// readResponse parses a provider's response from testdata.
func readResponse(t testing.TB, name string) *sip.Response {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := transport.NewLenientParser().ParseSIP(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Response)
}

// TestProviderResponses reads what real registrars send: the SHA-256
// challenge is picked (its qop list holds auth), and a 200 listing
// several contacts grants what parley's Contact says, not the header.
func TestProviderResponses(t *testing.T) {
	chal, answer, err := challengeOf(readResponse(t, "401.sip"))
	if err != nil || chal.Algorithm != "SHA-256" || answer != "Authorization" || chal.Opaque != "o" {
		t.Errorf("401: %+v %s %v", chal, answer, err)
	}
	r := newRegistration(trunkConfig(600, 0), discard, newMetrics(), nil)
	contact := sip.Uri{Scheme: "sip", User: "trunkuser", Host: "192.0.2.10", Port: 5060}
	got, err := r.granted(readResponse(t, "200.sip"), contact)
	if err != nil || got != 120*time.Second {
		t.Errorf("200 granted %v (%v), want the Contact's 120s", got, err)
	}
	if _, err := r.granted(readResponse(t, "200.sip"), sip.Uri{Scheme: "sip", User: "trunkuser", Host: "192.0.2.11", Port: 5060}); err == nil {
		t.Error("a 200 that lists other contacts only counted as registered")
	}
}

// FuzzProviderResponse feeds arbitrary responses from a provider through
// what parley reads of them: no panic, and what a 200 grants stays
// within a second and a day.
func FuzzProviderResponse(f *testing.F) {
	for _, name := range []string{"401.sip", "200.sip"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("SIP/2.0 423 Interval Too Brief\r\nMin-Expires: 99999999999999\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Digest nonce=\"\r\nContent-Length: 0\r\n\r\n"))
	parser := transport.NewLenientParser()
	contact := sip.Uri{Scheme: "sip", User: "trunkuser", Host: "192.0.2.10", Port: 5060}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := parser.ParseSIP(raw)
		if err != nil {
			return
		}
		res, ok := m.(*sip.Response)
		if !ok {
			return
		}
		_, _, _ = challengeOf(res)
		_ = headerSeconds(res, "Min-Expires")
		r := newRegistration(trunkConfig(600, 0), discard, newMetrics(), nil)
		if d, err := r.granted(res, contact); err == nil && (d < time.Second || d > maxExpires) {
			t.Fatalf("granted %v", d)
		}
	})
}
