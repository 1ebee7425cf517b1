package admin

import (
	"net"
	"net/netip"
	"testing"
)

// TestHostCheckNames checks the names each kind of listener accepts.
func TestHostCheckNames(t *testing.T) {
	var lanIP string // an address of this machine other than loopback, if any
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				lanIP = n.IP.String()
				break
			}
		}
	}
	tests := []struct {
		name        string
		listen      string
		bound       net.Addr
		allowed     []string
		refused     []string
		needsLANIPs bool
	}{
		{
			name: "loopback", listen: "127.0.0.1:9060", bound: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9060},
			allowed: []string{"127.0.0.1:9060", "localhost:9060", "[::1]:9060"},
			refused: []string{"", "evil.example:9060", "127.0.0.1:9061", "localhost", "192.0.2.1:9060", "[::]:9060", "0.0.0.0:9060"},
		},
		{
			name: "wildcard", listen: "0.0.0.0:9060", bound: &net.TCPAddr{IP: net.IPv4zero, Port: 9060},
			allowed: []string{"127.0.0.1:9060", "localhost:9060", lanIP + ":9060"},
			refused: []string{"evil.example:9060", "192.0.2.1:9060", lanIP + ":9061"},
		},
		{
			name: "empty host", listen: ":9060", bound: &net.TCPAddr{IP: net.IPv6unspecified, Port: 9060},
			allowed: []string{"127.0.0.1:9060", lanIP + ":9060"},
			refused: []string{"evil.example:9060", "192.0.2.1:9060"},
		},
		{
			name: "IPv6 wildcard", listen: "[::]:9060", bound: &net.TCPAddr{IP: net.IPv6unspecified, Port: 9060},
			allowed: []string{"[::1]:9060", "127.0.0.1:9060", lanIP + ":9060"},
			refused: []string{"evil.example:9060", "[2001:db8::1]:9060"},
		},
		{
			name: "a name on port 80", listen: "Admin.Example:80", bound: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80},
			allowed: []string{"admin.example", "admin.example:80", "ADMIN.EXAMPLE:80", "10.0.0.1", "10.0.0.1:80", "localhost"},
			refused: []string{"admin.example:8080", "evil.example", "other.example:80", "admin.example.evil.example"},
		},
		{
			name:    "no listener",
			allowed: []string{"localhost", "localhost:9060", "127.0.0.1:1", "[::1]:5"},
			refused: []string{"example.com", "192.0.2.1:9060"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHostCheck(tt.listen, tt.bound)
			for _, host := range tt.allowed {
				if host == ":9060" {
					continue // no LAN address on this machine
				}
				if !h.allows(host) {
					t.Errorf("Host %q refused, want it allowed", host)
				}
			}
			for _, host := range tt.refused {
				if host == ":9061" {
					continue
				}
				if h.allows(host) {
					t.Errorf("Host %q allowed, want it refused", host)
				}
			}
		})
	}
}

func TestIsLocalAddr(t *testing.T) {
	if !isLocalAddr(netip.MustParseAddr("127.0.0.1")) {
		t.Error("127.0.0.1 is not local")
	}
	if isLocalAddr(netip.MustParseAddr("192.0.2.1")) {
		t.Error("192.0.2.1 (TEST-NET-1) is local")
	}
}
