package trunk

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/parley-sip/parley/dialog/resolve"
)

// TestDestinationResolves: with the B2BUA's resolver, a registrar given
// by name with a port is looked up for its A record (RFC 3263 §4.2), one
// without a port through SRV _sip._udp; an IP address needs no lookup.
func TestDestinationResolves(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		name, qt := q.Question[0].Name, q.Question[0].Qtype
		switch {
		case name == "provider.test." && qt == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 2, 9)})
		case name == "_sip._udp.provider.test." && qt == dns.TypeSRV:
			m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 60},
				Priority: 10, Weight: 1, Port: 5099, Target: "provider.test."})
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	r, err := resolve.New(resolve.WithServers(pc.LocalAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	for reg, want := range map[string]string{
		"provider.test:5070": "127.0.2.9:5070",
		"provider.test":      "127.0.2.9:5099",
		"192.0.2.1:5080":     "192.0.2.1:5080",
	} {
		got, err := destination(context.Background(), r, reg)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("destination(%q) = %v, %v; want %s", reg, got, err, want)
		}
	}
	if _, err := destination(context.Background(), r, "nowhere.test"); err == nil {
		t.Error("a name that does not resolve gave an address")
	}
}
