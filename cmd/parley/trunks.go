package main

import (
	"log/slog"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/trunk"
)

// buildTrunks builds the upstream providers (trunks[]): the B2BUA
// registers with them and routes through them, the admin API lists them.
func (p *parts) buildTrunks(cfg *config.Config, log *slog.Logger) ([]dialog.Option, error) {
	set, err := trunk.New(cfg.Trunks, trunk.WithResolver(p.dns), trunk.WithLogger(log.With("component", "trunk")), trunk.WithRegisterer(p.metrics))
	if err != nil {
		return nil, err
	}
	p.trunks = set
	if len(cfg.Trunks) == 0 {
		return nil, nil
	}
	return []dialog.Option{dialog.WithTrunks(set)}, nil
}

// trunkOptions are the admin API's view of the trunks.
func (p *parts) trunkOptions() []admin.Option {
	if p.trunks == nil {
		return nil
	}
	return []admin.Option{admin.WithTrunks(p.trunks)}
}
