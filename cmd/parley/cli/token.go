package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
)

// tokenEnv names the environment variable the operator commands take the
// admin token from when -token is not given.
const tokenEnv = "PARLEY_ADMIN_TOKEN"

// adminToken is the token a command sends, and where it came from, or
// why there is none, for the message of a refused request.
type adminToken struct {
	value string
	// from says where value came from, or why it is empty.
	from string
}

// findToken returns the admin token from the first of: -token, the
// environment (tokenEnv), admin.token of cfg, and the token file parley
// keeps in cfg's store.path. cfg is -config's, else the embedded default
// (store.path ./data, relative to the directory the command runs in, as
// it is to parley's). Not finding one is no error: reading needs none, and
// the admin API refuses a write without it.
func findToken(flagToken string, cfg *config.Config, cfgName string) adminToken {
	if flagToken != "" {
		return adminToken{value: flagToken, from: "-token"}
	}
	if v := os.Getenv(tokenEnv); v != "" {
		return adminToken{value: v, from: tokenEnv}
	}
	if cfg.Admin.Token != "" {
		return adminToken{value: cfg.Admin.Token, from: "admin.token in " + cfgName}
	}
	dir := cfg.Store.Path
	if dir == "" {
		return adminToken{from: fmt.Sprintf("store.path is empty in %s, so parley made an admin token for this run only and printed it at start; pass it with -token or %s", cfgName, tokenEnv)}
	}
	path := admin.TokenPath(dir)
	tok, err := admin.ReadToken(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return adminToken{from: fmt.Sprintf("found no admin token: no -token, no %s, no admin.token in %s, and no %s (has parley started here with that store.path?)", tokenEnv, cfgName, path)}
	case err != nil:
		return adminToken{from: fmt.Sprintf("cannot read the admin token: %v (run as the user parley runs as, or pass -token or %s)", err, tokenEnv)}
	}
	return adminToken{value: tok, from: path}
}
