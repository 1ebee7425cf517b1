package config

import (
	"fmt"
	"net"
	"net/netip"
)

// validateDNS checks sip.dns: each entry an IP address, or IP:port.
func (c *Config) validateDNS() error {
	for i, s := range c.SIP.DNS {
		key := fmt.Sprintf("sip.dns[%d]", i)
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		if _, err := netip.ParseAddrPort(s); err != nil {
			host, _, _ := net.SplitHostPort(s)
			if _, herr := netip.ParseAddr(host); herr != nil {
				return bad(key, "%q: want an IP address or IP:port (a DNS server cannot be a name)", s)
			}
			return bad(key, "%q: %v", s, err)
		}
	}
	return nil
}
