package trunk

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/resolve"
)

// lookupTimeout bounds finding a registrar's address for a call.
const lookupTimeout = 2 * time.Second

// Set is the configured trunks. It is the B2BUA's dialog.Trunks and the
// admin API's list of trunks; it is safe for concurrent use.
type Set struct {
	dns  *resolve.Resolver
	log  *slog.Logger
	reg  prometheus.Registerer
	m    *metrics
	list []*registration
	by   map[string]*registration
}

// Option configures a Set.
type Option func(*Set) error

// WithResolver resolves registrars' host names with dns (sip.dns) as
// RFC 3263 says; without, the system's resolver gives an A or AAAA record.
func WithResolver(dns *resolve.Resolver) Option {
	return func(s *Set) error { s.dns = dns; return nil }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(s *Set) error { s.log = l; return nil }
}

// WithRegisterer registers the trunks' metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Set) error { s.reg = reg; return nil }
}

// New builds the Set of trunks, which config.Validate has checked.
func New(trunks []config.Trunk, opts ...Option) (*Set, error) {
	s := &Set{log: slog.New(slog.DiscardHandler), m: newMetrics(), by: map[string]*registration{}}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.reg != nil {
		if err := s.m.register(s.reg); err != nil {
			return nil, fmt.Errorf("trunk: metrics: %w", err)
		}
	}
	for _, t := range trunks {
		r := newRegistration(t, s.log, s.m, s.dns)
		s.m.set(t.Name, false)
		s.list = append(s.list, r)
		s.by[t.Name] = r
	}
	return s, nil
}

// Run keeps every trunk registered through c until stop is closed, then
// unregisters them (at once, each bounded) and returns.
func (s *Set) Run(stop <-chan struct{}, c dialog.TrunkClient) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range s.list {
		wg.Go(func() { r.run(ctx, c) })
	}
	<-stop
	cancel()
	wg.Wait()
}

// Outbound is where calls through trunk name go: its registrar, from its
// user at the provider's domain.
func (s *Set) Outbound(name string) (string, sip.Uri, error) {
	r, ok := s.by[name]
	if !ok {
		return "", sip.Uri{}, ErrUnknownTrunk
	}
	r.mu.Lock()
	dst := r.dest
	r.mu.Unlock()
	if !dst.IsValid() {
		// Not registered yet: the registrar's address now, bounded.
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		defer cancel()
		var err error
		if dst, err = destination(ctx, r.dns, r.cfg.Registrar); err != nil {
			return "", sip.Uri{}, err
		}
	}
	return dst.String(), r.aor(), nil
}

// Inbound reports whether req, a new INVITE, comes from a trunk: to the
// Contact parley registered there, or else from its registrar's IP
// address (the Contact first, so that two trunks with one provider each
// get their own calls). The call is for the trunk's inbound user when one
// is set; else for the Request-URI's user, or To's when the Request-URI
// is parley's Contact.
func (s *Set) Inbound(req *sip.Request) (string, string, bool) {
	var ip netip.Addr
	if src, err := netip.ParseAddrPort(req.Source()); err == nil {
		ip = src.Addr().Unmap()
	}
	ruri := req.Recipient
	var bySource *registration
	for _, r := range s.list {
		r.mu.Lock()
		dst, contact := r.dest, r.contact
		r.mu.Unlock()
		if contact.Host != "" && ruri.User == contact.User && strings.EqualFold(ruri.Host, contact.Host) &&
			(ruri.Port == contact.Port || (ruri.Port == 0 && contact.Port == 5060)) {
			return r.cfg.Name, r.inboundUser(req, true), true
		}
		if bySource == nil && dst.IsValid() && ip.IsValid() && dst.Addr() == ip {
			bySource = r
		}
	}
	if bySource != nil {
		bySource.mu.Lock()
		toContact := ruri.User == bySource.contact.User
		bySource.mu.Unlock()
		return bySource.cfg.Name, bySource.inboundUser(req, toContact), true
	}
	return "", "", false
}

// inboundUser is the local user a call from the trunk is for; toContact
// says the Request-URI's user is the Contact's.
func (r *registration) inboundUser(req *sip.Request, toContact bool) string {
	switch {
	case r.cfg.Inbound != "":
		return r.cfg.Inbound
	case toContact && req.To() != nil:
		return req.To().Address.User
	}
	return req.Recipient.User
}

// Authorize answers res, a provider's 401 or 407 to req sent through
// trunk name, with the trunk's credentials.
func (s *Set) Authorize(name string, req *sip.Request, res *sip.Response) (sip.Header, error) {
	r, ok := s.by[name]
	if !ok {
		return nil, ErrUnknownTrunk
	}
	chal, answer, err := challengeOf(res)
	if err != nil {
		return nil, err
	}
	return authorization(chal, answer, req, r.cfg.Username, r.cfg.Password, 1)
}

// Trunks returns every trunk's state, in the config's order.
func (s *Set) Trunks() []Status {
	out := make([]Status, 0, len(s.list))
	for _, r := range s.list {
		out = append(out, r.status())
	}
	return out
}
