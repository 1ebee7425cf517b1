package trunk

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/parley-sip/parley/config"
)

// destination turns a trunk's registrar (host or host:port, as
// trunks[].registrar) into the address its requests go to. It is the one
// place a registrar's name becomes an address: RFC 3263 resolution
// (NAPTR, SRV) belongs here. Until then an IP address is taken as it is
// and a host name is looked up for its first A or AAAA record.
func destination(ctx context.Context, registrar string) (netip.AddrPort, error) {
	host, port, err := config.SplitRegistrar(registrar)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
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
