package transport

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Advertiser picks the host parley puts in Via and Contact for messages
// sent over a listener: sip.public_address if set, else the listener's
// bound address, else (bound to 0.0.0.0 or ::) the local address the
// kernel would use towards the destination. That last one takes a routing
// lookup (a UDP "connect", which sends nothing); the answer is kept per
// destination network (a /24 for IPv4, a /64 for IPv6) for a minute, so
// it is not asked again for every message.
type Advertiser struct {
	public string

	mu    sync.Mutex
	cache map[netip.Prefix]advertised
}

type advertised struct {
	host string
	at   time.Time
}

// Bounds of the route cache: at most maxAdvertised networks are kept, and
// each answer for advertisedTTL (a route can change).
const (
	maxAdvertised = 1024
	advertisedTTL = time.Minute
)

// NewAdvertiser returns an Advertiser; public is sip.public_address.
func NewAdvertiser(public string) *Advertiser {
	return &Advertiser{public: public, cache: map[netip.Prefix]advertised{}}
}

// Host returns the host to announce for a message sent over ln to dest
// ("ip:port").
func (a *Advertiser) Host(ln *Listener, dest string) string {
	if a.public != "" {
		return a.public
	}
	if ip := ln.IP(); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	ap, err := netip.ParseAddrPort(dest)
	if err != nil {
		host, _, err := net.SplitHostPort(dest)
		if err != nil {
			return "127.0.0.1"
		}
		addr, err := netip.ParseAddr(host)
		if err != nil {
			return "127.0.0.1"
		}
		ap = netip.AddrPortFrom(addr, 0)
	}
	addr := ap.Addr().Unmap()
	if addr.IsLoopback() {
		return addr.String()
	}
	bits := 64
	if addr.Is4() {
		bits = 24
	}
	network, _ := addr.Prefix(bits)
	now := time.Now()
	a.mu.Lock()
	if c, ok := a.cache[network]; ok && now.Sub(c.at) < advertisedTTL {
		a.mu.Unlock()
		return c.host
	}
	a.mu.Unlock()
	host := routeSource(addr)
	a.mu.Lock()
	if len(a.cache) >= maxAdvertised {
		clear(a.cache)
	}
	a.cache[network] = advertised{host: host, at: now}
	a.mu.Unlock()
	return host
}

// routeSource asks the kernel which local address it would send to dst
// from; 127.0.0.1 when it has no route.
func routeSource(dst netip.Addr) string {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
