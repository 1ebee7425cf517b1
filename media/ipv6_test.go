package media

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// Calls between an IPv4 phone and an IPv6 phone: each side of a bridge
// binds on its phone's family, and the relay forwards between the two.

// The ports of these tests, apart from the other relay tests'.
const ipv6TestPorts = relayTestPorts + 400

var loopback6 = netip.IPv6Loopback()

// need6 skips the test on a machine without IPv6 loopback.
func need6(t *testing.T) {
	t.Helper()
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	c.Close()
}

// relayPeer6 is an IPv6 phone's socket on loopback.
func relayPeer6(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback6, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// at is parley's RTP (or RTCP) address for side s of b, on addr.
func at(b *Bridge, s Side, addr netip.Addr, rtcp bool) netip.AddrPort {
	port := b.Port(s)
	if rtcp {
		port++
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// exchange sends RTP from a (IPv4, side A) to c (IPv6, side B) and back
// through b, n packets each way, numbered from seq.
func exchange(t *testing.T, b *Bridge, a, c *net.UDPConn, seq uint16) {
	t.Helper()
	for i := range uint16(3) {
		fromA := relayRTP(t, 0xaaaa, seq+i, uint32(160*(seq+i)), []byte("ipv4 caller"))
		fromC := relayRTP(t, 0xcccc, seq+i, uint32(160*(seq+i)), []byte("ipv6 callee"))
		sendTo(t, a, at(b, SideA, loopback, false), fromA)
		expect(t, c, fromA, at(b, SideB, loopback6, false))
		sendTo(t, c, at(b, SideB, loopback6, false), fromC)
		expect(t, a, fromC, at(b, SideA, loopback, false))
	}
}

func TestRelayMixedFamilies(t *testing.T) {
	need6(t)
	r, _ := startRelay(t, ipv6TestPorts, 2, WithRelayAddress6(loopback6))
	b, err := r.OpenFor(loopback, loopback6)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if fa, fb := b.Family(SideA), b.Family(SideB); fa != IPv4 || fb != IPv6 {
		t.Fatalf("families %v and %v, want IPv4 and IPv6", fa, fb)
	}
	a, c := relayPeer(t), relayPeer6(t)
	// Each phone takes its RTCP on its RTP socket, to keep the test short.
	b.SetPeer(SideA, addrOf(a), addrOf(a), false)
	b.SetPeer(SideB, addrOf(c), addrOf(c), false)
	exchange(t, b, a, c, 1)

	// RTCP crosses families too.
	rr := receiverReport(0xaaaa, 0, 0, 0)
	sendTo(t, a, at(b, SideA, loopback, true), rr)
	expect(t, c, rr, at(b, SideB, loopback6, true))
	rr = receiverReport(0xcccc, 0, 0, 0)
	sendTo(t, c, at(b, SideB, loopback6, true), rr)
	expect(t, a, rr, at(b, SideA, loopback, true))

	st := b.Stats()
	if st.A.Forwarded != 3 || st.B.Forwarded != 3 {
		t.Errorf("forwarded %d and %d, want 3 each", st.A.Forwarded, st.B.Forwarded)
	}
	if st.A.Source != addrOf(a) || st.B.Source != addrOf(c) {
		t.Errorf("latched %v and %v, want %v and %v", st.A.Source, st.B.Source, addrOf(a), addrOf(c))
	}

	// A side sends to and latches addresses of its own family only.
	b.SetPeer(SideB, netip.AddrPortFrom(loopback, 4000), netip.AddrPort{}, false)
	if p := b.sides[SideB].peer[rtpSock]; p.valid() {
		t.Errorf("the IPv6 side took the IPv4 peer %v", p.ap)
	}
}

func TestRelayFamilyFallback(t *testing.T) {
	need6(t)
	// Without WithRelayAddress6 every side is IPv4, whatever it asks.
	r, _ := startRelay(t, ipv6TestPorts, 2)
	b, err := r.OpenFor(loopback6, loopback6)
	if err != nil {
		t.Fatal(err)
	}
	if b.Family(SideA) != IPv4 || b.Family(SideB) != IPv4 {
		t.Errorf("families %v and %v on an IPv4 relay", b.Family(SideA), b.Family(SideB))
	}
	b.Close()

	for _, bad := range []netip.Addr{loopback, {}, netip.MustParseAddr("::ffff:127.0.0.1")} {
		if _, err := NewRelay(newPool(t, ipv6TestPorts, 1), loopback, WithRelayAddress6(bad)); err == nil {
			t.Errorf("WithRelayAddress6(%v) accepted", bad)
		}
	}
}

// TestRelayPortBothFamilies checks that a port parked by an IPv4 side
// serves an IPv6 side next, and back: one pool for both families.
func TestRelayPortBothFamilies(t *testing.T) {
	need6(t)
	r, pool := startRelay(t, ipv6TestPorts, 2, WithRelayAddress6(loopback6))
	fams := [][2]Family{{IPv4, IPv4}, {IPv6, IPv6}, {IPv6, IPv4}, {IPv4, IPv6}, {FamilyDefault, IPv6}}
	for _, f := range fams {
		b, err := r.OpenFamily(f[0], f[1])
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		peers := [2]*net.UDPConn{}
		addrs := [2]netip.Addr{}
		for s := range peers {
			if b.Family(Side(s)) == IPv6 {
				peers[s], addrs[s] = relayPeer6(t), loopback6
			} else {
				peers[s], addrs[s] = relayPeer(t), loopback
			}
			b.SetPeer(Side(s), addrOf(peers[s]), netip.AddrPort{}, false)
		}
		pkt := relayRTP(t, 0xaaaa, 1, 160, []byte(fmt.Sprint(f)))
		sendTo(t, peers[SideA], at(b, SideA, addrs[SideA], false), pkt)
		expect(t, peers[SideB], pkt, at(b, SideB, addrs[SideB], false))
		sendTo(t, peers[SideB], at(b, SideB, addrs[SideB], false), pkt)
		expect(t, peers[SideA], pkt, at(b, SideA, addrs[SideA], false))
		b.Close()
	}
	if pool.InUse() != 0 {
		t.Errorf("%d ports in use after closing every bridge", pool.InUse())
	}
}

// familySDP is a phone's SDP at addr, receiving on port.
func familySDP(addr netip.Addr, port int) []byte {
	typ := "IP4"
	if addr.Is6() {
		typ = "IP6"
	}
	return []byte(fmt.Sprintf("v=0\r\no=phone 1 1 IN %[1]s %[2]s\r\ns=-\r\nc=IN %[1]s %[2]s\r\nt=0 0\r\nm=audio %[3]d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", typ, addr, port))
}

// wantConnection checks that sdp's o= and c= lines say addr.
func wantConnection(t *testing.T, what string, sdp []byte, addr netip.Addr) {
	t.Helper()
	typ := "IN IP4 "
	if addr.Is6() {
		typ = "IN IP6 "
	}
	s := string(sdp)
	if !strings.Contains(s, "\r\nc="+typ+addr.String()+"\r\n") {
		t.Errorf("%s: no c=%s%v:\n%s", what, typ, addr, s)
	}
	o, _, _ := sdpAddrs(t, sdp)
	if o != addr.String() || !strings.Contains(s, " "+typ+addr.String()+"\r\ns=") {
		t.Errorf("%s: o= line does not say %s%v:\n%s", what, typ, addr, s)
	}
}

func TestSessionsMixedFamilies(t *testing.T) {
	need6(t)
	r, _ := startRelay(t, ipv6TestPorts, 4, WithRelayAddress6(loopback6))
	ss, err := NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss.NewFor(loopback, loopback6)
	if err != nil {
		t.Fatal(err)
	}
	a, c := relayPeer(t), relayPeer6(t)
	toB, err := s.Offer(SideA, familySDP(loopback, int(addrOf(a).Port())))
	if err != nil {
		t.Fatal(err)
	}
	wantConnection(t, "offer to the IPv6 callee", toB, loopback6)
	toA, err := s.Answer(SideB, familySDP(loopback6, int(addrOf(c).Port())))
	if err != nil {
		t.Fatal(err)
	}
	wantConnection(t, "answer to the IPv4 caller", toA, loopback)
	b := s.br.(*Bridge)
	exchange(t, b, a, c, 1)

	// The checkpoint keeps each side's family, and Restore binds each on it.
	data, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	var st SessionState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Sides[SideA].Family != IPv4 || st.Sides[SideB].Family != IPv6 {
		t.Errorf("checkpoint families %v and %v, want IPv4 and IPv6", st.Sides[SideA].Family, st.Sides[SideB].Family)
	}
	ports := st.Ports
	s.Close()

	s, err = ss.Restore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b = s.br.(*Bridge)
	if got := [2]int{b.Port(SideA), b.Port(SideB)}; got != ports {
		t.Errorf("restored on ports %v, want %v", got, ports)
	}
	if b.Family(SideA) != IPv4 || b.Family(SideB) != IPv6 {
		t.Errorf("restored families %v and %v, want IPv4 and IPv6", b.Family(SideA), b.Family(SideB))
	}
	// The latched sources came back: media flows to both before either sends.
	pkt := relayRTP(t, 0xaaaa, 10, 1600, []byte("after restore"))
	sendTo(t, a, at(b, SideA, loopback, false), pkt)
	expect(t, c, pkt, at(b, SideB, loopback6, false))
	exchange(t, b, a, c, 11)
	wantConnection(t, "the callee's SDP, restored", s.Current(SideB), loopback6)

	// Move opens new ports, each side on its family again.
	m, err := ss.Move(data)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mb := m.br.(*Bridge)
	if mb.Family(SideA) != IPv4 || mb.Family(SideB) != IPv6 {
		t.Errorf("moved families %v and %v, want IPv4 and IPv6", mb.Family(SideA), mb.Family(SideB))
	}
	wantConnection(t, "re-offer to the IPv6 callee", m.Current(SideB), loopback6)
	wantConnection(t, "re-offer to the IPv4 caller", m.Current(SideA), loopback)
}

// TestSessionPerSideFamilyAddress checks the SDP of sessions bound to every
// address of both families: each side announces what SetAddress gave, IN
// IP6 for an IPv6 one.
func TestSessionPerSideFamilyAddress(t *testing.T) {
	open := func() (bridge, error) { return newFakeBridge(), nil }
	openFor := func(fams [2]Family) (bridge, error) {
		fb := newFakeBridge()
		fb.fams = fams
		return fb, nil
	}
	openAtFor := func(ports [2]int, fams [2]Family) (bridge, error) {
		fb := newFakeBridge()
		fb.ports, fb.fams = ports, fams
		return fb, nil
	}
	ss, err := NewSessions(open, netip.IPv4Unspecified(), defaultPrefs,
		withOpenFor(openFor, openAtFor), WithSessionsAddress6(netip.IPv6Unspecified()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss.NewFor(netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::5"))
	if err != nil {
		t.Fatal(err)
	}
	facing6 := netip.MustParseAddr("2001:db8::1")
	s.SetAddress(SideA, facingA)
	s.SetAddress(SideB, facing6)
	toB, err := s.Offer(SideA, readB2B(t, "sipp_uac_offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wantConnection(t, "offer to the callee", toB, facing6)
	toA, err := s.Answer(SideB, familySDP(netip.MustParseAddr("2001:db8::5"), 7000))
	if err != nil {
		t.Fatal(err)
	}
	wantConnection(t, "answer to the caller", toA, facingA)

	// A fixed IPv6 address is announced to IPv6 sides, the IPv4 one to
	// IPv4 sides.
	fixed6 := netip.MustParseAddr("2001:db8::9")
	ss, err = NewSessions(open, relayAddr, defaultPrefs, withOpenFor(openFor, openAtFor), WithSessionsAddress6(fixed6))
	if err != nil {
		t.Fatal(err)
	}
	s, err = ss.NewFor(netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	s.SetAddress(SideA, facing6) // ignored: fixed
	toB, err = s.Offer(SideA, familySDP(netip.MustParseAddr("2001:db8::5"), 7000))
	if err != nil {
		t.Fatal(err)
	}
	wantConnection(t, "offer to the IPv4 callee", toB, relayAddr)
	toA, err = s.Answer(SideB, readB2B(t, "sipp_uas_answer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wantConnection(t, "answer to the IPv6 caller", toA, fixed6)
}
