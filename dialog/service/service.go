// Package service is the registry of parley's built-in services: the
// numbers parley answers itself, such as the echo service, and later
// playback, conference, paging and push-to-talk rooms.
//
// It works as CoreDNS's plugin registry does. Each service lives in a
// package of its own beneath dialog/service, which registers a Setup under
// its name from an init function; cmd/parley imports the service packages
// (for their registration only) and asks Options for the dialog options
// that plug in every service the config turns on. The B2BUA (package
// dialog) knows only its small Service interface and never imports a
// service.
//
// A service's calls are recorded (dialog/cdr) under the application its
// Service names with dialog.Application (lastapp: Echo, Page, PTT,
// Conference, Playback), with the codec and quality its sessions tell
// through dialog.QualityReporter; the echo service implements both.
package service

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/media"
)

// Env is what parley hands a service's Setup.
type Env struct {
	// Config is the whole configuration; a service reads its own keys
	// (services.<name>) and the rtp keys.
	Config *config.Config
	// Log is the logger; a service adds its own "component".
	Log *slog.Logger
	// Ports is the RTP port pool the relay shares, and RTPAddress the
	// address media binds and announces (rtp.address); 0.0.0.0 when
	// rtp.address is "": media binds every address and announces the one
	// facing the caller (dialog's addressedService).
	Ports      *media.PortPool
	RTPAddress netip.Addr
	// Registerer takes a service's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Publish hands cmd what a service offers other parts of parley (the
	// rooms' Directory, for the admin API); nil drops it.
	Publish func(v any)
}

// Binding is one number a service answers.
type Binding struct {
	Number  string
	Service dialog.Service
}

// Setup builds a service from env. It returns the numbers the service
// answers, none when the config turns it off; an error names the config
// key at fault.
type Setup func(env Env) ([]Binding, error)

var (
	mu       sync.Mutex
	registry = map[string]Setup{}
)

// Register makes the service name known; service packages call it from
// init. A name registered twice is a programming error and panics.
func Register(name string, setup Setup) {
	mu.Lock()
	defer mu.Unlock()
	if _, ok := registry[name]; ok {
		panic("service: " + name + " registered twice")
	}
	registry[name] = setup
}

// Names returns the registered services, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Options sets up every registered service, in name order, and returns
// the dialog options that make their numbers reach them. Two services
// answering one number is a config error.
func Options(env Env) ([]dialog.Option, error) {
	var opts []dialog.Option
	taken := map[string]string{}
	for _, name := range Names() {
		mu.Lock()
		setup := registry[name]
		mu.Unlock()
		bindings, err := setup(env)
		if err != nil {
			return nil, err
		}
		for _, b := range bindings {
			if other, ok := taken[b.Number]; ok {
				return nil, fmt.Errorf("services.%s: number %s is taken by services.%s", name, b.Number, other)
			}
			taken[b.Number] = name
			opts = append(opts, dialog.WithService(b.Number, b.Service))
		}
	}
	return opts, nil
}
