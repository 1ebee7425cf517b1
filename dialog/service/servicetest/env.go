// Package servicetest is what the built-in services' tests share: an Env
// built from a config text, with a port pool of their own.
package servicetest

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/media"
)

// Env returns a service.Env for the config yaml, with RTP ports min to max
// on 127.0.0.1 and a logger that discards.
func Env(t testing.TB, yaml string, min, max int) service.Env {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := media.NewPortPool(min, max)
	if err != nil {
		t.Fatal(err)
	}
	return service.Env{Config: cfg, Log: slog.New(slog.DiscardHandler), Ports: pool, RTPAddress: netip.MustParseAddr("127.0.0.1")}
}
