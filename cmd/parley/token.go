package main

import (
	"fmt"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
)

// adminToken is the bearer token the admin API's changes need, and where
// it came from, for the welcome and the log to say without showing it.
type adminToken struct {
	value string
	// file is where parley keeps it, or "" when it comes from admin.token
	// or was made for this run only.
	file string
	// created says parley made it now: a new file, or a token for this
	// run.
	created bool
}

// loadAdminToken returns admin.token; else the token kept in store.path,
// made there on the first start (see admin.KeepToken) so that the operator
// commands find it; else, with no store, one made for this run only.
func loadAdminToken(cfg *config.Config) (adminToken, error) {
	if cfg.Admin.Token != "" {
		return adminToken{value: cfg.Admin.Token}, nil
	}
	if cfg.Store.Path == "" {
		return adminToken{value: admin.NewToken(), created: true}, nil
	}
	tok, created, err := admin.KeepToken(cfg.Store.Path)
	if err != nil {
		return adminToken{}, fmt.Errorf("store.path: %w", err)
	}
	return adminToken{value: tok, file: admin.TokenPath(cfg.Store.Path), created: created}, nil
}

// where says where the token is, for the log: never the token itself.
func (t adminToken) where() string {
	switch {
	case t.file != "":
		return t.file
	case t.created:
		return "this run only"
	default:
		return "admin.token"
	}
}
