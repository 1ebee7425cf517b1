package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/transport/tlstest"
)

// lockedBuffer is a log destination tests read while the listener writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func withLog(log *slog.Logger) GuardOption { return func(l *GuardedListener) { l.log = log } }

// tlsFiles writes a CA and a server certificate with serial into a
// temporary directory and loads it.
func tlsFiles(t *testing.T, serial int64) (*tlstest.CA, config.TLS, *Certificates) {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	files := config.TLS{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	ca.Issue(t, serial, files.Cert, files.Key)
	certs, err := LoadCertificates(files)
	if err != nil {
		t.Fatal(err)
	}
	return ca, files, certs
}

// tlsRoundTrip connects over TLS trusting ca, sends a SIP message and
// waits for the answer the served listener writes; it returns the serial
// of the certificate the server presented.
func tlsRoundTrip(t *testing.T, s *served, ca *tlstest.CA) string {
	t.Helper()
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", s.addr.String(), ca.ClientConfig())
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(sipMessage("hello"))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Fatalf("no answer over TLS: %q %v", buf[:n], err)
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSListenerSurvivesGarbage: bytes that are no TLS handshake close
// that connection with one debug line that shows none of them, and the
// next TLS client is served.
func TestTLSListenerSurvivesGarbage(t *testing.T) {
	ca, _, certs := tlsFiles(t, 7)
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := serveGuarded(t, TCPLimits{MaxConnections: 10, MaxPerSource: 10, FirstMessageTimeout: 5 * time.Second},
		WithTLS(certs.ServerConfig()), withLog(log))
	s.answer = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"

	const garbage = "INVITE sip:x@y SIP/2.0\r\nX-Secret: zzgarbagezz\r\n\r\n"
	c := s.dial(t, "127.0.0.1")
	if _, err := c.Write([]byte(garbage)); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, 2*time.Second) {
		t.Fatal("a connection sending garbage instead of a handshake stayed open")
	}
	if got := tlsRoundTrip(t, s, ca); got != "7" {
		t.Fatalf("served certificate serial %s, want 7", got)
	}
	out := logs.String()
	if n := strings.Count(out, "SIP TLS handshake failed"); n != 1 {
		t.Fatalf("%d handshake failure lines, want 1:\n%s", n, out)
	}
	if strings.Contains(out, "zzgarbagezz") || strings.Contains(out, "INVITE") {
		t.Fatalf("the log shows the bytes received:\n%s", out)
	}
	if !strings.Contains(out, "level=DEBUG") || strings.Contains(out, "level=ERROR") || strings.Contains(out, "level=WARN") {
		t.Fatalf("a failed handshake must be logged at debug level only:\n%s", out)
	}
}

// TestTLSListenerLimits: sip.tcp's per-source limit holds for TLS, and a
// client that connects and never shakes hands is closed at the
// first-message timeout.
func TestTLSListenerLimits(t *testing.T) {
	ca, _, certs := tlsFiles(t, 3)
	s := serveGuarded(t, TCPLimits{MaxConnections: 10, MaxPerSource: 1, FirstMessageTimeout: time.Second},
		WithTLS(certs.ServerConfig()))
	s.answer = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	staller := s.dial(t, "127.0.0.1")
	waitOpen(t, s.l, 1)
	if !s.refused(t, "127.0.0.1") {
		t.Fatal("a second TLS connection from one source stayed open past max_per_source 1")
	}
	start := time.Now()
	if !closedWithin(staller, 3*time.Second) {
		t.Fatal("a connection without a handshake outlived the first-message timeout")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("closed after %v, want about 1s", el)
	}
	waitOpen(t, s.l, 0)
	if got := tlsRoundTrip(t, s, ca); got != "3" {
		t.Fatalf("serial %s, want 3", got)
	}
}

// TestCertificatesReload: a reload serves the new certificate to new
// connections; a bad file names its key and path and keeps the old one.
func TestCertificatesReload(t *testing.T) {
	ca, files, certs := tlsFiles(t, 100)
	s := serveGuarded(t, TCPLimits{MaxConnections: 10, MaxPerSource: 10}, WithTLS(certs.ServerConfig()))
	s.answer = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	if got := tlsRoundTrip(t, s, ca); got != "100" {
		t.Fatalf("serial %s, want 100", got)
	}
	ca.Issue(t, 101, files.Cert, files.Key)
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := tlsRoundTrip(t, s, ca); got != "101" {
		t.Fatalf("after reload serial %s, want 101", got)
	}

	if err := os.WriteFile(files.Cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := certs.Reload()
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "sip.tls.cert" || !strings.Contains(err.Error(), files.Cert) {
		t.Fatalf("reload of a bad certificate: %v; want an error naming sip.tls.cert and %s", err, files.Cert)
	}
	if got := tlsRoundTrip(t, s, ca); got != "101" {
		t.Fatalf("after a failed reload serial %s, want 101 still", got)
	}
}

// TestBindTLS: a tls:// entry binds a TCP socket in its address's family
// and says tls.
func TestBindTLS(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := Bind(config.Listener{Network: "tls", Addr: addr})
		if err != nil {
			if addr == "[::1]:0" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		if ln.Network != "tls" || ln.TCP == nil || ln.UDP != nil || ln.PortNumber() == 0 {
			t.Errorf("Bind(tls://%s) = %+v", addr, ln)
		}
		ln.Close()
	}
}

// TestTLSClientOnTCPListener: a TLS client on a plain TCP listener is
// closed with one debug line that shows none of its bytes, and nothing of
// it reaches the reader (sipgo, which would log it as a parse error).
func TestTLSClientOnTCPListener(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := serveGuarded(t, TCPLimits{MaxConnections: 10, MaxPerSource: 10}, withLog(log))
	c, err := net.DialTimeout("tcp", s.addr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "parley.test", MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(3 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("a TLS handshake succeeded on a TCP listener")
	}
	tc.Close()
	ended := <-s.ended
	s.mu.Lock()
	got := len(s.read[ended])
	s.mu.Unlock()
	if got != 0 {
		t.Fatalf("%d bytes of the handshake reached the reader", got)
	}
	out := logs.String()
	if !strings.Contains(out, "a TLS handshake on a TCP listener") || strings.Contains(out, "level=ERROR") {
		t.Fatalf("log:\n%s", out)
	}
	// A SIP client is still served.
	sc := s.dial(t, "127.0.0.1")
	if _, err := sc.Write([]byte(sipMessage("x"))); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, s.l, 1)
}
