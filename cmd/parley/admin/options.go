package admin

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Option configures a Server. It returns an error for a value it cannot
// use.
type Option func(*Server) error

// WithMetrics serves reg on /metrics, and registers there the counter of
// errors the metrics handler itself meets. Without it /metrics serves an
// empty registry.
func WithMetrics(reg *prometheus.Registry) Option {
	return func(s *Server) error {
		if reg == nil {
			return fmt.Errorf("%w: nil prometheus.Registry", ErrBadOption)
		}
		s.metrics = reg
		return nil
	}
}

// WithCalls makes /api/calls list and hang up the calls of t. Without it
// the API knows no calls.
func WithCalls(t CallTable) Option {
	return func(s *Server) error {
		if t == nil {
			return fmt.Errorf("%w: nil CallTable", ErrBadOption)
		}
		s.calls = t
		return nil
	}
}

// WithRegistrations makes /api/registrations list and remove the bindings
// of r. Without it the API knows no registrations.
func WithRegistrations(r Registrations) Option {
	return func(s *Server) error {
		if r == nil {
			return fmt.Errorf("%w: nil Registrations", ErrBadOption)
		}
		s.regs = r
		return nil
	}
}

// WithBans makes /api/bans list and lift the bans of b. Without it the
// API knows no bans.
func WithBans(b Bans) Option {
	return func(s *Server) error {
		if b == nil {
			return fmt.Errorf("%w: nil Bans", ErrBadOption)
		}
		s.bans = b
		return nil
	}
}

// WithToken makes token the bearer token (Authorization: Bearer TOKEN)
// that every request changing state needs: any method but GET and HEAD.
// Without it, every such request is refused.
func WithToken(token string) Option {
	return func(s *Server) error {
		if token == "" {
			return fmt.Errorf("%w: empty admin token", ErrBadOption)
		}
		s.token = newBearer(token)
		return nil
	}
}

// WithPProf serves Go's profiler on /debug/pprof/ when on is true
// (admin.pprof). Without it /debug/pprof/ answers 404.
func WithPProf(on bool) Option {
	return func(s *Server) error {
		s.pprof = on
		return nil
	}
}

// WithReadyCheck makes /readyz answer 503 naming name while check returns
// an error: a store parley cannot write to, for example. Calls in progress
// go on meanwhile; the check says new ones would not be kept.
func WithReadyCheck(name string, check func() error) Option {
	return func(s *Server) error {
		if check == nil {
			return fmt.Errorf("%w: nil ready check", ErrBadOption)
		}
		s.state.checks = append(s.state.checks, readyCheck{name, check})
		return nil
	}
}

// WithNodes makes /api/nodes list the cluster's nodes from n. Without it
// the list is empty: parley runs alone.
func WithNodes(n Nodes) Option {
	return func(s *Server) error {
		if n == nil {
			return fmt.Errorf("%w: nil Nodes", ErrBadOption)
		}
		s.nodes = n
		return nil
	}
}
