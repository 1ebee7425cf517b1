package resolve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Bounds on what one answer, and one resolution, may make parley do. An
// answer comes from the network: whatever it holds, these cap the work.
const (
	maxRecords    = 32 // records of the asked type taken from one answer
	maxCNAMEs     = 8  // CNAME links followed from a name
	maxSRVTargets = 8  // SRV targets looked up for addresses, per service
	maxAddrs      = 8  // addresses taken per host name
	maxTargets    = 16 // targets one resolution returns
	maxTTL        = time.Hour
	minTTL        = time.Second
	negativeTTL   = 30 * time.Second // NXDOMAIN or no data, without an SOA
	failTTL       = 5 * time.Second  // no server answered
	maxNegTTL     = 5 * time.Minute
	udpSize       = 4096 // EDNS0 buffer size asked for
)

// Resolver resolves SIP URIs to targets (RFC 3263). It is safe for use by
// several goroutines.
type Resolver struct {
	servers []string // host:port; nil: read /etc/resolv.conf when first asked
	conf    string   // resolv.conf path
	timeout time.Duration
	total   time.Duration
	log     *slog.Logger
	cache   *cache
	now     func() time.Time
	flight  singleflight.Group
}

// Option sets up a Resolver.
type Option func(*Resolver) error

// WithServers makes the Resolver ask these DNS servers (host:port, or a
// host, port 53), in order, instead of those in /etc/resolv.conf.
func WithServers(servers ...string) Option {
	return func(r *Resolver) error {
		for _, s := range servers {
			if _, _, err := net.SplitHostPort(s); err != nil {
				s = net.JoinHostPort(strings.Trim(s, "[]"), "53")
			}
			host, _, _ := net.SplitHostPort(s)
			if net.ParseIP(host) == nil {
				return fmt.Errorf("DNS server %q: want an IP address", s)
			}
			r.servers = append(r.servers, s)
		}
		return nil
	}
}

// WithTimeout bounds one query to one server (default 2 s) and one
// resolution in all (default 5 s).
func WithTimeout(query, total time.Duration) Option {
	return func(r *Resolver) error {
		if query <= 0 || total <= 0 {
			return fmt.Errorf("DNS timeouts must be positive")
		}
		r.timeout, r.total = query, total
		return nil
	}
}

// WithCacheSize bounds the answers kept (default 1024).
func WithCacheSize(n int) Option {
	return func(r *Resolver) error {
		if n < 1 {
			return fmt.Errorf("DNS cache size %d: want at least 1", n)
		}
		r.cache = newCache(n)
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(r *Resolver) error {
		r.log = l
		return nil
	}
}

// New builds a Resolver. Without WithServers it reads /etc/resolv.conf
// when it first needs a server, so a machine without one can still start.
func New(opts ...Option) (*Resolver, error) {
	r := &Resolver{
		conf:    "/etc/resolv.conf",
		timeout: 2 * time.Second,
		total:   5 * time.Second,
		log:     slog.Default(),
		cache:   newCache(1024),
		now:     time.Now,
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// serverList is the servers to ask, in order.
func (r *Resolver) serverList() ([]string, error) {
	if len(r.servers) > 0 {
		return r.servers, nil
	}
	cc, err := dns.ClientConfigFromFile(r.conf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServerFailure, err)
	}
	out := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no nameserver in %s", ErrServerFailure, r.conf)
	}
	return out, nil
}

// lookup returns the records of type qtype for name (a FQDN), following
// CNAMEs, from the cache or the servers. Its error wraps ErrNoSuchName,
// ErrNoRecords (the name exists, without such records) or
// ErrServerFailure.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	name = dns.CanonicalName(name)
	for range maxCNAMEs {
		rrs, next, err := r.lookupOne(ctx, name, qtype)
		if err != nil || next == "" {
			return rrs, err
		}
		name = next
	}
	return nil, &Error{Name: name, Err: fmt.Errorf("%w: CNAME chain longer than %d", ErrServerFailure, maxCNAMEs)}
}

// lookupOne asks for name once. When the answer ends in a CNAME whose
// target it does not hold, next is that target, to be asked in turn.
// Concurrent askers of one question share one query; each waits for it
// no longer than its own ctx.
func (r *Resolver) lookupOne(ctx context.Context, name string, qtype uint16) (rrs []dns.RR, next string, err error) {
	key := cacheKey{name: name, qtype: qtype}
	if e, ok := r.cache.get(key, r.now()); ok {
		return e.rrs, e.next, e.err
	}
	// The shared query is bounded by the query timeout per server, not
	// by the first asker's ctx, so that asker leaving ends it for no one.
	ch := r.flight.DoChan(name+"/"+dns.TypeToString[qtype], func() (any, error) {
		return r.query(context.WithoutCancel(ctx), key), nil
	})
	select {
	case res := <-ch:
		e := res.Val.(entry)
		return e.rrs, e.next, e.err
	case <-ctx.Done():
		return nil, "", &Error{Name: strings.TrimSuffix(name, "."), Err: fmt.Errorf("%w: %v", ErrServerFailure, ctx.Err())}
	}
}

// query asks the servers for key in turn until one answers, and caches
// what it learnt: an answer for its TTL, a negative one for the SOA's
// minimum, no answer at all for failTTL.
func (r *Resolver) query(ctx context.Context, key cacheKey) entry {
	name, qtype := key.name, key.qtype
	servers, err := r.serverList()
	if err != nil {
		return entry{err: &Error{Name: strings.TrimSuffix(name, "."), Err: err}}
	}
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.SetEdns0(udpSize, false)
	var last error
	for _, srv := range servers {
		res, err := r.exchange(ctx, q, srv)
		if err != nil {
			last = err
			r.log.Debug("DNS query failed", "name", name, "type", dns.TypeToString[qtype], "server", srv, "error", err)
			continue
		}
		switch res.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			e := entry{err: &Error{Name: strings.TrimSuffix(name, "."), Err: ErrNoSuchName}, ttl: negTTL(res)}
			r.cache.put(key, e, r.now())
			return e
		default:
			last = fmt.Errorf("%s from %s", dns.RcodeToString[res.Rcode], srv)
			continue
		}
		e := answerOf(res, name, qtype)
		if len(e.rrs) == 0 && e.next == "" {
			e.err = &Error{Name: strings.TrimSuffix(name, "."), Err: ErrNoRecords}
			e.ttl = negTTL(res)
		}
		r.cache.put(key, e, r.now())
		return e
	}
	// RFC 2308 §7.1: a server failure may be cached, for at most 5
	// minutes; a few seconds keep a dead server from holding every call.
	e := entry{err: &Error{Name: strings.TrimSuffix(name, "."), Err: fmt.Errorf("%w: %v", ErrServerFailure, last)}, ttl: failTTL}
	r.cache.put(key, e, r.now())
	return e
}

// exchange sends q to srv over UDP, and over TCP when the answer was
// truncated, each bounded by the query timeout.
func (r *Resolver) exchange(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: udpSize}
	res, _, err := c.ExchangeContext(ctx, q, srv)
	if err == nil && res.Truncated {
		c.Net = "tcp"
		res, _, err = c.ExchangeContext(ctx, q, srv)
	}
	if err != nil {
		return nil, err
	}
	// The ID is checked by the client; the question must be ours too.
	if len(res.Question) != 1 || !strings.EqualFold(res.Question[0].Name, q.Question[0].Name) || res.Question[0].Qtype != q.Question[0].Qtype {
		return nil, fmt.Errorf("answer to another question")
	}
	return res, nil
}

// answerOf takes from res the records of type qtype owned by name or by
// the CNAMEs it leads to (within the answer, at most maxCNAMEs links),
// at most maxRecords of them, and the smallest TTL among those used. If
// the chain ends in a CNAME without records, next names its target.
func answerOf(res *dns.Msg, name string, qtype uint16) entry {
	e := entry{ttl: maxTTL}
	owner := name
	for range maxCNAMEs + 1 {
		var cname string
		for _, rr := range res.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, owner) {
				continue
			}
			if h.Rrtype == qtype && len(e.rrs) < maxRecords {
				e.rrs = append(e.rrs, rr)
				e.ttl = min(e.ttl, ttlOf(h.Ttl))
			}
			if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME && cname == "" {
				cname = dns.CanonicalName(c.Target)
				e.ttl = min(e.ttl, ttlOf(h.Ttl))
			}
		}
		if len(e.rrs) > 0 {
			return e
		}
		if cname == "" {
			break
		}
		owner = cname
	}
	if owner != name {
		e.next = owner
	}
	return e
}

func ttlOf(sec uint32) time.Duration {
	return min(max(time.Duration(sec)*time.Second, minTTL), maxTTL)
}

// negTTL is how long a negative answer is kept (RFC 2308 §5: the SOA's
// minimum, bounded by its own TTL).
func negTTL(res *dns.Msg) time.Duration {
	for _, rr := range res.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(max(time.Duration(min(soa.Minttl, soa.Hdr.Ttl))*time.Second, minTTL), maxNegTTL)
		}
	}
	return negativeTTL
}
