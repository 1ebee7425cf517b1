package dialog

import (
	"github.com/parley-sip/parley/dialog/transport"
)

// WithCertificates sets the certificate the tls:// listeners present, so
// that the caller can reload it (SIGHUP). Without it, New loads sip.tls
// itself when sip.listen has a tls:// entry.
func WithCertificates(c *transport.Certificates) Option {
	return func(s *Server) error { s.certs = c; return nil }
}

// loadCertificates loads sip.tls for the tls:// listeners, unless
// WithCertificates gave it. An error names the key and the file.
func (s *Server) loadCertificates() error {
	if s.certs != nil || !s.cfg.HasTLSListener() {
		return nil
	}
	c, err := transport.LoadCertificates(s.cfg.SIP.TLS)
	if err != nil {
		return err
	}
	s.certs = c
	return nil
}

// tlsOptions are the guard options of a TLS listener: its certificate.
func (s *Server) tlsOptions(ln *transport.Listener) []transport.GuardOption {
	if ln.Network != "tls" {
		return nil
	}
	return []transport.GuardOption{transport.WithTLS(s.certs.ServerConfig())}
}

// serveStream serves a TCP or TLS listener's guarded listener with sipgo.
func (s *Server) serveStream(ln *transport.Listener, g *transport.GuardedListener) error {
	if ln.Network == "tls" {
		return s.srv.ServeTLS(g)
	}
	return s.srv.ServeTCP(g)
}
