package resolve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/miekg/dns"
)

// Target is one place to send a request: an address and the transport to
// reach it over.
type Target struct {
	// Transport is "udp", "tcp" or "tls".
	Transport string
	// Addr is the IP address and port.
	Addr netip.AddrPort
	// Name is the host name Addr was found for (an SRV target, or the
	// URI's host); empty when the URI held the address.
	Name string
}

// String gives the target as transport:ip:port.
func (t Target) String() string { return t.Transport + ":" + t.Addr.String() }

// service is an RFC 3263 transport: its NAPTR service field, its SRV
// prefix, its transport and default port.
type service struct {
	naptr, srv, transport string
	port                  uint16
}

// services are the transports parley may use, in the order it prefers
// them when NAPTR gives no order (RFC 3263 §4.1).
var services = []service{
	{"SIP+D2U", "_sip._udp.", "udp", 5060},
	{"SIP+D2T", "_sip._tcp.", "tcp", 5060},
	{"SIPS+D2T", "_sips._tcp.", "tls", 5061},
}

// serviceFor is the service of a transport for a sip: or sips: URI
// (secure); ok is false for a transport parley does not resolve.
func serviceFor(transport string, secure bool) (service, bool) {
	transport = strings.ToLower(transport)
	if secure && (transport == "tcp" || transport == "tls") {
		return services[2], true
	}
	for _, s := range services {
		if s.transport == transport && (!secure || s.transport == "tls") {
			return s, true
		}
	}
	return service{}, false
}

// Resolve returns the targets for u in the order to try them (RFC 3263 §4):
//   - a numeric host: that address, with u's port or the default one;
//   - a host name with a port: its A and AAAA records;
//   - a transport parameter, no port: the SRV records of that transport,
//     or A and AAAA with the default port when there are none;
//   - neither: NAPTR records for SIP+D2U, SIP+D2T and SIPS+D2T (only
//     SIPS+D2T for a sips: URI) leading to SRV records; without NAPTR
//     records, the SRV records of each transport; without those, A and
//     AAAA over UDP (TLS for sips:).
//
// Its error is an *Error wrapping ErrNoSuchName, ErrNoRecords or
// ErrServerFailure. ctx bounds it, and so does the Resolver's total
// timeout.
func (r *Resolver) Resolve(ctx context.Context, u sip.Uri) ([]Target, error) {
	ctx, cancel := context.WithTimeout(ctx, r.total)
	defer cancel()
	secure := u.IsEncrypted()
	host := strings.TrimSuffix(strings.TrimPrefix(u.Host, "["), "]")
	if host == "" {
		return nil, &Error{Name: u.Host, Err: ErrNoSuchName}
	}
	transport := ""
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("transport"); ok {
			transport = strings.ToLower(v)
		}
	}
	svc, known := services[0], true
	if secure {
		svc = services[2]
	}
	if transport != "" {
		svc, known = serviceFor(transport, secure)
		if !known {
			return nil, &Error{Name: host, Err: fmt.Errorf("%w: transport %q", ErrNoRecords, transport)}
		}
	}
	port := svc.port
	if u.Port > 0 && u.Port < 65536 {
		port = uint16(u.Port)
	}

	// §4.1, §4.2: a numeric IP address needs no lookup.
	if ip, err := netip.ParseAddr(host); err == nil {
		return []Target{{Transport: svc.transport, Addr: netip.AddrPortFrom(ip.Unmap(), port)}}, nil
	}
	name := dns.Fqdn(host)
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, &Error{Name: host, Err: ErrNoSuchName}
	}
	// §4.2: a port means A or AAAA records, no SRV.
	if u.Port != 0 {
		return r.hostTargets(ctx, name, svc.transport, port, nil)
	}
	// §4.1: a transport means its SRV records.
	if transport != "" {
		out, err := r.srvTargets(ctx, svc.srv+name, svc.transport)
		if err == nil || !errors.Is(err, ErrNoSuchName) && !errors.Is(err, ErrNoRecords) {
			return out, err
		}
		return r.hostTargets(ctx, name, svc.transport, port, nil)
	}

	out, err := r.naptrTargets(ctx, name, secure)
	if len(out) > 0 || err != nil && !errors.Is(err, ErrNoSuchName) && !errors.Is(err, ErrNoRecords) {
		return out, err
	}
	// No NAPTR: the SRV records of every transport, in parley's order.
	for _, s := range services {
		if secure && s.transport != "tls" {
			continue
		}
		t, err := r.srvTargets(ctx, s.srv+name, s.transport)
		if err != nil && Temporary(err) {
			return nil, err
		}
		out = appendBounded(out, t)
	}
	if len(out) > 0 {
		return out, nil
	}
	return r.hostTargets(ctx, name, svc.transport, svc.port, nil)
}

// naptrTargets follows the NAPTR records of name (RFC 3263 §4.1, RFC
// 3403): those for the SIP services, with the "s" flag, in order and then
// preference, each to its SRV records.
func (r *Resolver) naptrTargets(ctx context.Context, name string, secure bool) ([]Target, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeNAPTR)
	if err != nil {
		return nil, err
	}
	type rec struct {
		n   *dns.NAPTR
		svc service
	}
	var recs []rec
	for _, rr := range rrs {
		n, ok := rr.(*dns.NAPTR)
		if !ok || !strings.EqualFold(n.Flags, "s") || n.Replacement == "" || n.Replacement == "." {
			continue
		}
		for _, s := range services {
			if strings.EqualFold(n.Service, s.naptr) && (!secure || s.transport == "tls") {
				recs = append(recs, rec{n, s})
			}
		}
	}
	slices.SortStableFunc(recs, func(a, b rec) int {
		if a.n.Order != b.n.Order {
			return int(a.n.Order) - int(b.n.Order)
		}
		return int(a.n.Preference) - int(b.n.Preference)
	})
	var out []Target
	var last error
	for _, rc := range recs {
		t, err := r.srvTargets(ctx, rc.n.Replacement, rc.svc.transport)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out = appendBounded(out, t)
	}
	if len(out) == 0 && last != nil {
		return nil, last
	}
	return out, nil
}

// srvTargets looks name's SRV records up and each target's addresses, in
// RFC 2782 order.
func (r *Resolver) srvTargets(ctx context.Context, name, transport string) ([]Target, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var srvs []*dns.SRV
	for _, rr := range rrs {
		// A target of "." says the service is not offered (RFC 2782).
		if s, ok := rr.(*dns.SRV); ok && s.Target != "." && s.Target != "" {
			srvs = append(srvs, s)
		}
	}
	srvs = orderSRV(srvs, rand.IntN)
	if len(srvs) > maxSRVTargets {
		srvs = srvs[:maxSRVTargets]
	}
	var out []Target
	var last error
	for _, s := range srvs {
		out, err = r.hostTargets(ctx, s.Target, transport, s.Port, out)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
		}
	}
	if len(out) == 0 {
		if last == nil {
			last = &Error{Name: strings.TrimSuffix(name, "."), Err: ErrNoRecords}
		}
		return nil, last
	}
	return out, nil
}

// hostTargets appends to out the A, then AAAA, addresses of name with
// port. It fails only when neither lookup gave an address.
func (r *Resolver) hostTargets(ctx context.Context, name, transport string, port uint16, out []Target) ([]Target, error) {
	host := strings.TrimSuffix(name, ".")
	before := len(out)
	var errs []error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.lookup(ctx, name, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := 0
		for _, rr := range rrs {
			var ip netip.Addr
			switch a := rr.(type) {
			case *dns.A:
				ip, _ = netip.AddrFromSlice(a.A.To4())
			case *dns.AAAA:
				ip, _ = netip.AddrFromSlice(a.AAAA.To16())
			}
			if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || n >= maxAddrs {
				continue
			}
			n++
			out = appendBounded(out, []Target{{Transport: transport, Addr: netip.AddrPortFrom(ip.Unmap(), port), Name: host}})
		}
	}
	if len(out) > before {
		return out, nil
	}
	for _, err := range errs {
		if Temporary(err) {
			return out, err
		}
	}
	if len(errs) > 0 {
		return out, errs[0]
	}
	return out, &Error{Name: host, Err: ErrNoRecords}
}

// appendBounded appends ts to out, leaving out duplicates and stopping at
// maxTargets.
func appendBounded(out, ts []Target) []Target {
	for _, t := range ts {
		if len(out) >= maxTargets {
			break
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// orderSRV puts SRV records in the order RFC 2782 says to try them: by
// priority, and within one priority by a weighted random draw (weight 0
// records first in the list, so they are picked rarely). intn draws an
// int in [0, n).
func orderSRV(srvs []*dns.SRV, intn func(int) int) []*dns.SRV {
	slices.SortStableFunc(srvs, func(a, b *dns.SRV) int { return int(a.Priority) - int(b.Priority) })
	out := make([]*dns.SRV, 0, len(srvs))
	for i := 0; i < len(srvs); {
		j := i
		for j < len(srvs) && srvs[j].Priority == srvs[i].Priority {
			j++
		}
		group := slices.Clone(srvs[i:j])
		slices.SortStableFunc(group, func(a, b *dns.SRV) int {
			return min(int(a.Weight), 1) - min(int(b.Weight), 1)
		})
		for len(group) > 0 {
			sum := 0
			for _, s := range group {
				sum += int(s.Weight)
			}
			pick := intn(sum + 1)
			k, run := 0, 0
			for k = range group {
				run += int(group[k].Weight)
				if run >= pick {
					break
				}
			}
			out = append(out, group[k])
			group = slices.Delete(group, k, k+1)
		}
		i = j
	}
	return out
}
