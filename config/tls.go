package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
)

// DefaultTLSPort is the port of a tls:// listener given without one
// (RFC 3261 §19.1.2: 5061 for SIP over TLS).
const DefaultTLSPort = "5061"

// maxPEMFile bounds what is read of sip.tls.cert and sip.tls.key: a chain
// of a few certificates is a few kilobytes.
const maxPEMFile = 1 << 20

// TLS holds the certificate parley presents on its tls:// listeners. Both
// files are PEM; the certificate file may hold the chain after the
// server's own certificate. SIGHUP reads them again.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// HasTLSListener reports whether sip.listen holds a tls:// entry.
func (c *Config) HasTLSListener() bool {
	for _, l := range c.Listeners() {
		if l.Network == "tls" {
			return true
		}
	}
	return false
}

// validateTLS checks sip.tls when a tls:// listener needs it: both files
// must be set, readable and hold a matching certificate and key.
func (c *Config) validateTLS() error {
	t := c.SIP.TLS
	if !c.HasTLSListener() && t.Cert == "" && t.Key == "" {
		return nil
	}
	if t.Cert == "" {
		return bad("sip.tls.cert", "a tls:// listener needs a PEM certificate file")
	}
	if t.Key == "" {
		return bad("sip.tls.key", "a tls:// listener needs a PEM private key file")
	}
	_, err := t.Load()
	return err
}

// Load reads the certificate and key files. An error is an *Error that
// names the key and the file at fault.
func (t TLS) Load() (tls.Certificate, error) {
	certPEM, err := readPEM("sip.tls.cert", t.Cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readPEM("sip.tls.key", t.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, bad("sip.tls.cert", "%s: no PEM CERTIFICATE block", t.Cert)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return tls.Certificate{}, bad("sip.tls.cert", "%s: %v", t.Cert, err)
	}
	if kb, _ := pem.Decode(keyPEM); kb == nil {
		return tls.Certificate{}, bad("sip.tls.key", "%s: no PEM private key block", t.Key)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, bad("sip.tls.key", "%s does not go with sip.tls.cert %s: %v", t.Key, t.Cert, err)
	}
	cert.Leaf = leaf
	return cert, nil
}

func readPEM(key, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, bad(key, "%v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, bad(key, "%s: %v", path, err)
	}
	if len(b) > maxPEMFile {
		return nil, bad(key, "%s: larger than %d bytes", path, maxPEMFile)
	}
	return b, nil
}
