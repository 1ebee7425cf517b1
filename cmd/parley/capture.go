package main

import (
	"log/slog"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/capture"
)

// captureOptions builds the HEP exporter of capture.hep, when set, and
// returns the dialog option that shows it every SIP message; the B2BUA
// runs its sender.
func (p *parts) captureOptions(cfg *config.Config, log *slog.Logger) ([]dialog.Option, error) {
	if cfg.Capture.HEP == "" {
		return nil, nil
	}
	e, err := capture.NewHEP(cfg.Capture.HEP,
		capture.WithAgentID(cfg.Capture.HEPID),
		capture.WithAuthKey(cfg.Capture.HEPPassword),
		capture.WithNodeName(nodeID(cfg)),
		capture.WithLogger(log.With("component", "capture")),
		capture.WithRegisterer(p.metrics))
	if err != nil {
		return nil, err
	}
	p.closer = append(p.closer, e.Close)
	log.Info("HEP capture on", "capture.hep", cfg.Capture.HEP, "capture.hep_id", cfg.Capture.HEPID)
	return []dialog.Option{dialog.WithCapture(e)}, nil
}
