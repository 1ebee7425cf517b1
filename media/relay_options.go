package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RelayOption configures a Relay. Options check their value and may fail.
type RelayOption func(*Relay) error

// WithRelayLogger sets the logger the relay and its bridges log to. The
// default discards.
func WithRelayLogger(l *slog.Logger) RelayOption {
	return func(r *Relay) error {
		if l == nil {
			return errors.New("media: nil logger")
		}
		r.log = l
		return nil
	}
}

// WithRelayTimeout closes a bridge's Done when neither side sent RTP for d
// (see Bridge.Done). Zero, the default, never does.
func WithRelayTimeout(d time.Duration) RelayOption {
	return func(r *Relay) error {
		if d < 0 {
			return errors.New("media: relay timeout must not be negative")
		}
		r.timeout = d
		return nil
	}
}

// WithRelayRegisterer registers the relay's metrics (parley_rtp_*) on reg.
// Without it the relay exports none.
func WithRelayRegisterer(reg prometheus.Registerer) RelayOption {
	return func(r *Relay) error {
		if reg == nil {
			return errors.New("media: nil prometheus registerer")
		}
		r.reg = reg
		return nil
	}
}

// WithRelayWorkers sets how many workers forward packets, each on its own
// thread. The default is GOMAXPROCS: one per CPU the program may use.
func WithRelayWorkers(n int) RelayOption {
	return func(r *Relay) error {
		if n < 1 {
			return errors.New("media: a relay needs at least one worker")
		}
		r.nworkers = n
		return nil
	}
}

// WithRelayAddress6 makes the relay bind the sides opened for IPv6 (see
// Relay.OpenFamily) on addr, an IPv6 address, or on every IPv6 address when
// addr is :: (the SDP then announces, per side, the address facing the
// phone). Without it every side binds on NewRelay's address. A relay whose
// own address is IPv6 binds IPv6 sides on that one and ignores addr.
func WithRelayAddress6(addr netip.Addr) RelayOption {
	return func(r *Relay) error {
		if !addr.IsValid() || !addr.Is6() || addr.Is4In6() {
			return fmt.Errorf("media: relay IPv6 address %v is not an IPv6 address", addr)
		}
		r.addr6 = addr.WithZone("")
		return nil
	}
}
