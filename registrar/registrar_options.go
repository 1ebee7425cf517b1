package registrar

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Option configures a Registrar. It returns an error for a value it cannot
// use.
type Option func(*Registrar) error

// Defaults for the options below.
const (
	DefaultMinExpires = 60
	DefaultMaxExpires = 3600
	// defaultExpires is what RFC 3261 §10.2.1.1 suggests a registrar assume
	// when neither an expires parameter nor an Expires header is present.
	defaultExpires = 3600
	// DefaultFlushDelay is how long a change waits for others to join its
	// write to the Store.
	DefaultFlushDelay = 100 * time.Millisecond
	// DefaultSweepInterval is how often expired bindings are removed.
	DefaultSweepInterval = time.Second
)

// WithExpires bounds the registration interval in seconds: a shorter
// non-zero request is refused with 423 Interval Too Brief, a longer one is
// shortened to max.
func WithExpires(min, max int) Option {
	return func(r *Registrar) error {
		if min < 1 || max < min {
			return fmt.Errorf("%w: min %d, max %d", ErrBadExpires, min, max)
		}
		r.minExpires, r.maxExpires = min, max
		return nil
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(r *Registrar) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrBadOption)
		}
		r.log = l
		return nil
	}
}

// WithMetrics registers parley_registrations, parley_contacts and
// parley_contact_rtt_seconds on reg, and parley_store_errors_total when the
// Store counts its errors (a [RedisStore] does).
func WithMetrics(reg prometheus.Registerer) Option {
	return func(r *Registrar) error {
		if reg == nil {
			return fmt.Errorf("%w: nil prometheus.Registerer", ErrBadOption)
		}
		r.metricsReg = reg
		return nil
	}
}

// WithClock replaces time.Now for expiry arithmetic (tests).
func WithClock(now func() time.Time) Option {
	return func(r *Registrar) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrBadOption)
		}
		r.now = now
		return nil
	}
}

// WithFlushDelay sets how long Run lets changes gather before writing them
// to the Store in one batch.
func WithFlushDelay(d time.Duration) Option {
	return func(r *Registrar) error {
		if d < 0 {
			return fmt.Errorf("%w: flush delay %v is negative", ErrBadOption, d)
		}
		r.flushDelay = d
		return nil
	}
}

// WithBindingObserver has f told of each user whose bindings this node
// changed: a REGISTER, a removal, an expiry. f runs under the bindings'
// lock, so it must return at once and not call the Registrar.
func WithBindingObserver(f func(user string)) Option {
	return func(r *Registrar) error {
		r.observe = f
		return nil
	}
}

// WithSweepInterval sets how often Run removes expired bindings.
func WithSweepInterval(d time.Duration) Option {
	return func(r *Registrar) error {
		if d <= 0 {
			return fmt.Errorf("%w: sweep interval %v must be positive", ErrBadOption, d)
		}
		r.sweepEvery = d
		return nil
	}
}

// WithQualify has Run ping every registered contact with p once per every,
// to learn which ones still answer (Lookup skips those that stopped) and to
// keep UDP contacts' NAT bindings open. every <= 0 or a nil p turns it off,
// as does not calling it. See qualify.go for how the pings are paced.
func WithQualify(every time.Duration, p Pinger) Option {
	return func(r *Registrar) error {
		if every <= 0 || p == nil {
			r.pinger, r.qualifyEvery = nil, 0
			return nil
		}
		r.pinger, r.qualifyEvery = p, every
		return nil
	}
}

// WithMaxContacts bounds the bindings one user may hold
// (registrar.max_contacts): a REGISTER that would leave more gets 403 with
// a Warning naming the limit. 0 means no bound.
func WithMaxContacts(n int) Option {
	return func(r *Registrar) error {
		if n < 0 {
			return fmt.Errorf("%w: max contacts %d", ErrBadOption, n)
		}
		r.maxContacts = n
		return nil
	}
}

// WithNode names this parley node. Every binding the Registrar writes from
// a REGISTER carries it in [Binding.Node], so nodes sharing a Store (see
// [OpenRedisStore]) know which of them holds the phone's flow: a node
// qualifies only its own bindings, and after the shared store comes back
// from a restart it writes its own bindings to it again. Give every node
// sharing a store its own ID; a lone node needs none.
func WithNode(id string) Option {
	return func(r *Registrar) error {
		if strings.TrimSpace(id) != id {
			return fmt.Errorf("%w: node ID %q has surrounding spaces", ErrBadOption, id)
		}
		r.node = id
		return nil
	}
}

// WithNodeAddr sets this node's SIP address, "ip:port", which every binding
// the Registrar writes from a REGISTER carries in [Binding.NodeAddr]: where
// another node sends a call for that phone.
func WithNodeAddr(addr string) Option {
	return func(r *Registrar) error {
		if addr != "" {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return fmt.Errorf("%w: node address %q: %w", ErrBadOption, addr, err)
			}
			if p, err := strconv.Atoi(port); host == "" || err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("%w: node address %q needs a host and a port", ErrBadOption, addr)
			}
		}
		r.nodeAddr = addr
		return nil
	}
}
