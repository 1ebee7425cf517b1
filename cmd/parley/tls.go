package main

import (
	"log/slog"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/transport"
)

// buildTLS loads the certificate of the tls:// listeners (sip.tls), when
// sip.listen has one, and returns the option that hands it to the B2BUA.
// SIGHUP reloads it (reloadTLS, from the records' signal loop). An error
// names the key and the file.
func (p *parts) buildTLS(cfg *config.Config) ([]dialog.Option, error) {
	if !cfg.HasTLSListener() {
		return nil, nil
	}
	c, err := transport.LoadCertificates(cfg.SIP.TLS)
	if err != nil {
		return nil, err
	}
	p.certs = c
	return []dialog.Option{dialog.WithCertificates(c)}, nil
}

// reloadTLS reads sip.tls.cert and sip.tls.key again: new connections get
// the new certificate, open ones keep theirs. A bad file is logged and the
// certificate in use stays; parley goes on either way.
func (p *parts) reloadTLS(cfg *config.Config, log *slog.Logger) {
	if p.certs == nil {
		return
	}
	if err := p.certs.Reload(); err != nil {
		log.Error("SIGHUP: TLS certificate not reloaded; the one in use stays", "error", err)
		return
	}
	leaf := p.certs.Current().Leaf
	log.Info("SIGHUP: TLS certificate reloaded", "sip.tls.cert", cfg.SIP.TLS.Cert,
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
}
