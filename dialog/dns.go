package dialog

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/resolve"
	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Resolver finds the targets of a route whose host is a name, in the
// order to try them (RFC 3263). *resolve.Resolver is one.
type Resolver interface {
	Resolve(ctx context.Context, u sip.Uri) ([]resolve.Target, error)
}

// WithResolver sets the resolver of route targets' host names (default:
// a resolve.Resolver asking sip.dns, or /etc/resolv.conf's servers).
func WithResolver(r Resolver) Option {
	return func(s *Server) error {
		s.dns = r
		return nil
	}
}

// resolveWait bounds the lookups for one call's route, so a DNS server
// that does not answer holds the call's worker no longer than this.
const resolveWait = 6 * time.Second

// failoverAfter is how long a branch with another target behind it may
// stay without any response (not even 100 Trying, RFC 3261 §8.2.6.1 asks
// for one within 200 ms) before the next target is tried. RFC 3263 §4.3
// counts a transaction timeout as a failure; waiting out Timer B (32 s)
// per target would outlast the caller's patience, so parley gives up
// sooner, as Kamailio's fr_timer does, on every target but the last.
var failoverAfter = 4 * time.Second

// defaultResolver is the resolver New builds when none is given.
func (s *Server) defaultResolver() error {
	r, err := resolve.New(resolve.WithServers(s.cfg.SIP.DNS...), resolve.WithLogger(s.log))
	if err != nil {
		return err
	}
	s.dns = r
	return nil
}

// routeTarget is where the route's URI u leads: its address when the host
// is one, else the targets DNS gives (RFC 3263), the first with the others
// behind it as its alternatives (tried in turn, placeCall). Targets no
// listener of parley's can reach are left out; so are those of another IP
// family than the first, since the call's media faces one family.
func (s *Server) routeTarget(u sip.Uri) (target, error) {
	t := target{uri: u, to: u, dest: uriDest(u), transport: uriTransport(u)}
	if _, err := netip.ParseAddrPort(t.dest); err == nil || s.dns == nil {
		if s.listenerFor(t.transport, t.dest) == nil {
			return t, &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: "no " + t.transport + " listener for route"}
		}
		return t, nil
	}
	ctx, cancel := context.WithTimeout(s.context(), resolveWait)
	found, err := s.dns.Resolve(ctx, u)
	cancel()
	if err != nil {
		s.log.Info("route target not resolved", "host", u.Host, "error", err)
		if resolve.Temporary(err) || errors.Is(err, context.DeadlineExceeded) {
			return t, &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: "DNS: " + err.Error(), RetryAfter: 30}
		}
		return t, &sipmsg.Error{Code: 404, Reason: "Not Found", Warning: "DNS: " + err.Error()}
	}
	var out []target
	for _, r := range found {
		if len(out) > 0 && r.Addr.Addr().Is6() != netip.MustParseAddrPort(out[0].dest).Addr().Is6() {
			continue
		}
		c := target{uri: u, to: u, dest: r.Addr.String(), transport: r.Transport}
		if ln := s.listenerFor(c.transport, c.dest); ln == nil || !sameFamily(ln.IP(), r.Addr.Addr()) {
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return t, &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: "DNS: " + u.Host + ": no target parley has a listener for"}
	}
	out[0].alts = out[1:]
	return out[0], nil
}

// sameFamily reports whether a listener bound to ip can send to a: an
// unspecified IPv6 listener takes both families.
func sameFamily(ip []byte, a netip.Addr) bool {
	la, ok := netip.AddrFromSlice(ip)
	if !ok {
		return true
	}
	la = la.Unmap()
	if la.IsUnspecified() && la.Is6() {
		return true
	}
	return la.Is6() == a.Is6()
}

// nextTarget is the alternative after t, with the rest behind it.
func nextTarget(t target) target {
	n := t.alts[0]
	n.alts = t.alts[1:]
	return n
}
