package transport

import (
	"net"
	"testing"
)

// TestAdvertiser checks the order of choices: the public address, the
// bound address, the loopback destination itself, and the kernel's route
// for anything else, asked once per network.
func TestAdvertiser(t *testing.T) {
	bound := &Listener{Network: "udp", ip: net.IPv4(127, 0, 0, 2), port: 5060}
	any4 := &Listener{Network: "udp", ip: net.IPv4zero, port: 5060}
	if got := NewAdvertiser("203.0.113.9").Host(bound, "127.0.0.1:5062"); got != "203.0.113.9" {
		t.Errorf("public address: got %s", got)
	}
	if got := NewAdvertiser("").Host(bound, "192.0.2.1:5062"); got != "127.0.0.2" {
		t.Errorf("bound address: got %s", got)
	}
	a := NewAdvertiser("")
	if got := a.Host(any4, "127.0.0.5:5062"); got != "127.0.0.5" {
		t.Errorf("loopback destination: got %s", got)
	}
	first := a.Host(any4, "192.0.2.1:5062")
	if net.ParseIP(first) == nil {
		t.Fatalf("routed destination: %q is not an address", first)
	}
	if n := len(a.cache); n != 1 {
		t.Fatalf("%d networks cached, want 1", n)
	}
	// Same /24: from the cache, no second lookup.
	if got := a.Host(any4, "192.0.2.200:5060"); got != first || len(a.cache) != 1 {
		t.Fatalf("same network: got %s with %d cached, want %s from the cache", got, len(a.cache), first)
	}
	a.Host(any4, "198.51.100.1:5060")
	if n := len(a.cache); n != 2 {
		t.Fatalf("%d networks cached, want 2", n)
	}
}
