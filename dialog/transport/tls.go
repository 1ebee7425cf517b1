package transport

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/parley-sip/parley/config"
)

// tlsHandshakeTimeout bounds a TLS handshake on an accepted connection
// (sip.tcp.first_message_timeout, when shorter, bounds it too), so a
// client that connects and stalls holds its slot no longer than this.
const tlsHandshakeTimeout = 10 * time.Second

// tlsHandshakeRecord is the first byte of a TLS handshake record (RFC 8446
// §5.1, content type 22). No SIP message or keepalive starts with it.
const tlsHandshakeRecord = 0x16

// Certificates is the certificate parley presents on its TLS listeners
// (sip.tls.cert and sip.tls.key). Reload reads the files again and swaps
// the certificate atomically: connections made afterwards get the new
// one, those already open keep theirs.
type Certificates struct {
	files config.TLS
	cur   atomic.Pointer[tls.Certificate]
}

// LoadCertificates reads files. An error names the key and the file.
func LoadCertificates(files config.TLS) (*Certificates, error) {
	c := &Certificates{files: files}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On an error the certificate in use stays.
func (c *Certificates) Reload() error {
	cert, err := c.files.Load()
	if err != nil {
		return err
	}
	c.cur.Store(&cert)
	return nil
}

// Current is the certificate presented now.
func (c *Certificates) Current() *tls.Certificate { return c.cur.Load() }

// ServerConfig is the TLS configuration of a listener presenting c: TLS
// 1.2 at least, and the current certificate for every handshake.
func (c *Certificates) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// WithTLS makes a GuardedListener serve SIP over TLS with conf: each
// connection it accepts is counted and limited as a TCP one, does its
// handshake on its first read, and its limits (framing, idle and
// first-message deadlines) apply to the messages the TLS records carry.
func WithTLS(conf *tls.Config) GuardOption {
	return func(l *GuardedListener) { l.tls = conf }
}

// handshake runs the TLS handshake of an accepted connection. A failure
// (a plain-text client, a scanner's garbage, a client that refuses the
// certificate, a stall) is logged once at debug level, by its error's
// text and never the bytes received, and closes the connection; the
// listener goes on.
func (c *guardedConn) handshake() error {
	deadline := time.Now().Add(tlsHandshakeTimeout)
	if !c.firstBy.IsZero() && c.firstBy.Before(deadline) {
		deadline = c.firstBy
	}
	_ = c.TCPConn.SetDeadline(deadline)
	err := c.tls.Handshake()
	_ = c.TCPConn.SetDeadline(time.Time{})
	if err != nil {
		c.l.log.Debug("SIP TLS handshake failed", "source", c.RemoteAddr().String(), "error", handshakeError(err))
		c.closeNow()
		return err
	}
	c.shook = true
	return nil
}

// handshakeError says why a handshake failed in a few words.
func handshakeError(err error) string {
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &rh):
		// Its message is fixed text; the record header bytes it holds are
		// not shown.
		return rh.Msg
	case errors.Is(err, io.EOF):
		return "connection closed during the handshake"
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no handshake within the time allowed"
	}
	return err.Error()
}
