package trunk

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/emiago/sipgo/sip"
	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/resolve"
)

// destination turns a trunk's registrar (host or host:port, as
// trunks[].registrar) into the address its requests go to. It is the one
// place a registrar's name becomes an address. An IP address is taken as
// it is; with dns (sip.dns, the B2BUA's resolver) a host name is resolved
// as RFC 3263 says for a UDP request (SRV _sip._udp unless a port is
// given, then A/AAAA) and the first target taken; without, the system's
// resolver gives its first A or AAAA record.
func destination(ctx context.Context, dns *resolve.Resolver, registrar string) (netip.AddrPort, error) {
	host, port, err := config.SplitRegistrar(registrar)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
	}
	if dns != nil {
		u := sip.Uri{Scheme: "sip", Host: host, UriParams: sip.NewParams()}
		if _, p, _ := net.SplitHostPort(registrar); p != "" {
			u.Port = port
		}
		u.UriParams.Add("transport", "udp")
		ts, err := dns.Resolve(ctx, u)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %s: %v", ErrNoAddress, registrar, err)
		}
		return ts[0].Addr, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %s: %v", ErrNoAddress, net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: %s", ErrNoAddress, host)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(port)), nil
}
