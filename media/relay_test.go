package media

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Port ranges of the relay tests, away from those of the echo and session
// tests.
const (
	relayTestPorts  = 24000
	relayLoadPorts  = 40000
	relayBenchPorts = 36000
)

// startRelay runs a relay over a pool of pairs port pairs from first until
// the test ends, and checks that Run then returns nil.
func startRelay(t testing.TB, first, pairs int, opts ...RelayOption) (*Relay, *PortPool) {
	t.Helper()
	pool, err := NewPortPool(first, first+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(pool, loopback, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r, pool
}

// openBridge opens a bridge that the test closes when it ends.
func openBridge(t testing.TB, r *Relay) *Bridge {
	t.Helper()
	b, err := r.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// relayPeer is a phone's socket on loopback.
func relayPeer(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// bridgeAddr is parley's address for side s, RTCP's if rtcp.
func bridgeAddr(b *Bridge, s Side, rtcp bool) netip.AddrPort {
	port := b.Port(s)
	if rtcp {
		port++
	}
	return netip.AddrPortFrom(loopback, uint16(port))
}

func relayRTP(t testing.TB, ssrc uint32, seq uint16, ts uint32, payload []byte) []byte {
	t.Helper()
	p := rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
		Payload: payload,
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// receiverReport builds an RTCP RR (RFC 3550 §6.4.2) with one report block.
func receiverReport(ssrc uint32, fraction uint8, lost int32, jitter uint32) []byte {
	b := make([]byte, 32)
	b[0] = 2<<6 | 1
	b[1] = rtcpRR
	b[3] = 7 // length in words minus one
	put32(b[4:], ssrc)
	put32(b[8:], 0xabcdef01)
	b[12] = fraction
	b[13], b[14], b[15] = byte(lost>>16), byte(lost>>8), byte(lost)
	put32(b[16:], 1234)
	put32(b[20:], jitter)
	return b
}

func put32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func sendTo(t testing.TB, c *net.UDPConn, to netip.AddrPort, pkt []byte) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(pkt, to); err != nil {
		t.Fatal(err)
	}
}

// expect reads one datagram on c and checks it is want, from from.
func expect(t testing.TB, c *net.UDPConn, want []byte, from netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, src, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("%v: waiting for a packet: %v", addrOf(c), err)
	}
	if src != from {
		t.Errorf("%v: packet from %v, want %v", addrOf(c), src, from)
	}
	if !bytes.Equal(buf[:n], want) {
		t.Errorf("%v: got % x\nwant % x", addrOf(c), buf[:n], want)
	}
}

// waitFor waits until cond holds, for a second at most.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}

// expectNothing checks that no datagram arrives on c for a while.
func expectNothing(t testing.TB, c *net.UDPConn) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, src, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Errorf("%v: unexpected packet from %v: % x", addrOf(c), src, buf[:n])
	}
}

func TestRelayForwardsBothWays(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2)
	b := openBridge(t, r)
	a, c := relayPeer(t), relayPeer(t)
	b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)

	const n = 100
	for i := range n {
		fromA := relayRTP(t, 0xaaaa, uint16(i), uint32(160*i), bytes.Repeat([]byte{byte(i)}, 160))
		fromC := relayRTP(t, 0xcccc, uint16(60000+i), uint32(320*i), bytes.Repeat([]byte{^byte(i)}, 80))
		sendTo(t, a, bridgeAddr(b, SideA, false), fromA)
		sendTo(t, c, bridgeAddr(b, SideB, false), fromC)
		expect(t, c, fromA, bridgeAddr(b, SideB, false))
		expect(t, a, fromC, bridgeAddr(b, SideA, false))
	}

	st := b.Stats()
	for _, tc := range []struct {
		side  Side
		bytes uint64
		src   netip.AddrPort
	}{
		{SideA, n * 172, addrOf(a)},
		{SideB, n * 92, addrOf(c)},
	} {
		s := st.Side(tc.side)
		if s.Packets != n || s.Forwarded != n || s.Bytes != tc.bytes || s.Dropped != 0 || s.Lost != 0 {
			t.Errorf("%v: %+v, want %d packets, %d bytes, all forwarded", tc.side, s, n, tc.bytes)
		}
		if s.Source != tc.src {
			t.Errorf("%v: latched to %v, want %v", tc.side, s.Source, tc.src)
		}
		if time.Since(s.Last) > time.Minute {
			t.Errorf("%v: Last = %v", tc.side, s.Last)
		}
	}
}

// TestRelayLatching follows a phone behind NAT: its SDP gives one address,
// its packets come from another, and a stranger tries to butt in.
func TestRelayLatching(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2)
	b := openBridge(t, r)
	announced, real, stranger, callee := relayPeer(t), relayPeer(t), relayPeer(t), relayPeer(t)
	b.SetPeer(SideA, addrOf(announced), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(callee), netip.AddrPort{}, false)

	steps := []struct {
		name    string
		from    *net.UDPConn
		side    Side // the bridge port it sends to
		reaches *net.UDPConn
		dropped uint64 // side A's Dropped after the step
		re      bool   // SetPeer again first (re-INVITE)
	}{
		{name: "before latching the callee reaches the announced address", from: callee, side: SideB, reaches: announced},
		{name: "the caller's first packet latches", from: real, side: SideA, reaches: callee},
		{name: "now the callee reaches the real address", from: callee, side: SideB, reaches: real},
		{name: "a stranger is dropped", from: stranger, side: SideA, dropped: 1},
		{name: "the latched source still passes", from: real, side: SideA, reaches: callee, dropped: 1},
		{name: "a re-INVITE resets the latch", re: true, from: callee, side: SideB, reaches: announced, dropped: 1},
		{name: "and the next source latches", from: stranger, side: SideA, reaches: callee, dropped: 1},
		{name: "then the old source is dropped", from: real, side: SideA, dropped: 2},
	}
	for i, s := range steps {
		if s.re {
			b.SetPeer(SideA, addrOf(announced), netip.AddrPort{}, false)
		}
		pkt := relayRTP(t, uint32(s.side)+1, uint16(i), uint32(i*160), []byte(s.name))
		sendTo(t, s.from, bridgeAddr(b, s.side, false), pkt)
		if s.reaches != nil {
			expect(t, s.reaches, pkt, bridgeAddr(b, s.side.Other(), false))
		} else {
			for _, c := range []*net.UDPConn{announced, real, stranger, callee} {
				expectNothing(t, c)
			}
		}
		if got := b.Stats().A.Dropped; got != s.dropped {
			t.Errorf("%s: A dropped %d, want %d", s.name, got, s.dropped)
		}
	}
	if got := b.Stats().A.Source; got != addrOf(stranger) {
		t.Errorf("A latched to %v, want %v", got, addrOf(stranger))
	}
}

// TestRelayPhoneChanged: after another phone takes side A's place (a
// transfer), the old phone's last packets are dropped and do not latch;
// the new phone's first packet latches the side, and once the grace is
// over the old phone is only a stranger.
func TestRelayPhoneChanged(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2)
	b := openBridge(t, r)
	old, nu, callee := relayPeer(t), relayPeer(t), relayPeer(t)
	b.SetPeer(SideA, addrOf(old), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(callee), netip.AddrPort{}, false)
	toA, toB := bridgeAddr(b, SideA, false), bridgeAddr(b, SideB, false)

	pkt := relayRTP(t, 1, 1, 160, []byte("old phone"))
	sendTo(t, old, toA, pkt)
	expect(t, callee, pkt, toB)

	b.PhoneChanged(SideA, 300*time.Millisecond)
	b.SetPeer(SideA, addrOf(nu), netip.AddrPort{}, false)
	pkt = relayRTP(t, 1, 2, 320, []byte("old phone, still on its way"))
	sendTo(t, old, toA, pkt)
	expectNothing(t, callee)
	if got := b.Stats().A.Dropped; got != 1 {
		t.Errorf("A dropped %d after the old phone's late packet, want 1", got)
	}
	pkt = relayRTP(t, 2, 1, 160, []byte("new phone"))
	sendTo(t, nu, toA, pkt)
	expect(t, callee, pkt, toB)
	if got := b.Stats().A.Source; got != addrOf(nu) {
		t.Errorf("A latched to %v, want the new phone %v", got, addrOf(nu))
	}
	pkt = relayRTP(t, 3, 1, 160, []byte("to the new phone"))
	sendTo(t, callee, toB, pkt)
	expect(t, nu, pkt, toA)

	// Once the grace is over, a side whose latch is reset takes the old
	// source again like any other.
	time.Sleep(350 * time.Millisecond)
	b.SetPeer(SideA, addrOf(nu), netip.AddrPort{}, false)
	pkt = relayRTP(t, 1, 3, 480, []byte("old phone, much later"))
	sendTo(t, old, toA, pkt)
	expect(t, callee, pkt, toB)
}

func TestRelayRTCP(t *testing.T) {
	tests := []struct {
		name         string
		muxA, muxB   bool
		wantA, wantB string // "rtp" or "rtcp": where each side gets RTCP
	}{
		{name: "both on odd ports"},
		{name: "A muxed", muxA: true},
		{name: "B muxed", muxB: true},
		{name: "both muxed", muxA: true, muxB: true},
	}
	r, _ := startRelay(t, relayTestPorts, 2)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := openBridge(t, r)
			defer b.Close()
			type phone struct{ rtp, rtcp *net.UDPConn }
			a := phone{relayPeer(t), relayPeer(t)}
			c := phone{relayPeer(t), relayPeer(t)}
			b.SetPeer(SideA, addrOf(a.rtp), addrOf(a.rtcp), tc.muxA)
			b.SetPeer(SideB, addrOf(c.rtp), addrOf(c.rtcp), tc.muxB)
			// where side s sends and receives RTCP
			rtcpOf := func(s Side) (*net.UDPConn, netip.AddrPort) {
				p, mux := a, tc.muxA
				if s == SideB {
					p, mux = c, tc.muxB
				}
				if mux {
					return p.rtp, bridgeAddr(b, s, false)
				}
				return p.rtcp, bridgeAddr(b, s, true)
			}
			for _, from := range []Side{SideA, SideB} {
				conn, to := rtcpOf(from)
				rr := receiverReport(uint32(from)+7, 25, 300+int32(from), 40+uint32(from))
				sendTo(t, conn, to, rr)
				peer, via := rtcpOf(from.Other())
				expect(t, peer, rr, via)
			}
			// RTP still goes RTP port to RTP port.
			pkt := relayRTP(t, 9, 1, 160, []byte("rtp"))
			sendTo(t, a.rtp, bridgeAddr(b, SideA, false), pkt)
			expect(t, c.rtp, pkt, bridgeAddr(b, SideB, false))

			st := b.Stats()
			for _, s := range []Side{SideA, SideB} {
				ss := st.Side(s)
				if ss.RTCPPackets != 1 || ss.RemoteFraction != 25 || ss.RemoteLost != 300+uint32(s) || ss.RemoteJitter != 40+uint32(s) {
					t.Errorf("%v: %+v, want the report's numbers", s, ss)
				}
			}
			if st.A.Packets != 1 || st.A.Dropped != 0 || st.B.Dropped != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestRelayDropsJunk checks that what is not RTP does not pass, nor RTCP
// on an RTP port without rtcp-mux, nor RTP on an RTCP port.
func TestRelayDropsJunk(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2)
	b := openBridge(t, r)
	a, c := relayPeer(t), relayPeer(t)
	b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	junk := []struct {
		name string
		pkt  []byte
		rtcp bool
	}{
		{name: "short", pkt: []byte{0x80, 0, 0, 1}},
		{name: "version 1", pkt: append([]byte{0x40}, make([]byte, 20)...)},
		{name: "STUN", pkt: append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)},
		{name: "RTCP without mux", pkt: receiverReport(1, 0, 0, 0)},
		{name: "RTP on the RTCP port", pkt: relayRTP(t, 1, 1, 1, []byte("x")), rtcp: true},
	}
	for _, j := range junk {
		sendTo(t, a, bridgeAddr(b, SideA, j.rtcp), j.pkt)
	}
	expectNothing(t, c)
	if st := b.Stats().A; st.Dropped != uint64(len(junk)) || st.Packets != 0 || st.Source.IsValid() {
		t.Errorf("A: %+v, want %d dropped and no latch", st, len(junk))
	}
}

func TestRelayLoss(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2)
	b := openBridge(t, r)
	a, c := relayPeer(t), relayPeer(t)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	skip := map[int]bool{10: true, 20: true, 21: true, 22: true, 23: true, 24: true}
	sent := 0
	for i := range 100 {
		if skip[i] {
			continue
		}
		pkt := relayRTP(t, 5, uint16(65500+i), uint32(160*i), make([]byte, 160))
		sendTo(t, a, bridgeAddr(b, SideA, false), pkt)
		expect(t, c, pkt, bridgeAddr(b, SideB, false))
		sent++
	}
	st := b.Stats().A
	if st.Lost != uint64(len(skip)) || st.Packets != uint64(sent) {
		t.Errorf("A: %+v, want %d lost of %d", st, len(skip), sent)
	}
}

func TestRelayInactivity(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r, _ := startRelay(t, relayTestPorts, 4, WithRelayTimeout(timeout))

	t.Run("silence", func(t *testing.T) {
		b := openBridge(t, r)
		a := relayPeer(t)
		start := time.Now()
		for i := range 5 {
			sendTo(t, a, bridgeAddr(b, SideA, false), relayRTP(t, 1, uint16(i), 0, nil))
			time.Sleep(100 * time.Millisecond)
		}
		select {
		case <-b.Done():
			t.Fatalf("Done after %v while RTP flowed", time.Since(start))
		case <-time.After(timeout / 2):
		}
		select {
		case <-b.Done():
		case <-time.After(2 * timeout):
			t.Fatal("Done still open after the timeout")
		}
		if took := time.Since(start); took < 400*time.Millisecond+timeout {
			t.Errorf("Done after %v", took)
		}
	})
	t.Run("on idle callback", func(t *testing.T) {
		b := openBridge(t, r)
		fired := make(chan time.Time, 2)
		start := time.Now()
		b.OnIdle(func() { fired <- time.Now() })
		select {
		case at := <-fired:
			if at.Sub(start) < timeout-10*time.Millisecond {
				t.Errorf("OnIdle ran after %v, before the %v timeout", at.Sub(start), timeout)
			}
		case <-time.After(4 * timeout):
			t.Fatal("OnIdle never ran")
		}
		// Registered after the timeout, it runs at once.
		b.OnIdle(func() { fired <- time.Now() })
		select {
		case <-fired:
		case <-time.After(timeout):
			t.Fatal("OnIdle registered late did not run")
		}
	})
	t.Run("hold", func(t *testing.T) {
		b := openBridge(t, r)
		b.SetHold(true)
		select {
		case <-b.Done():
			t.Fatal("Done closed on hold")
		case <-time.After(3 * timeout):
		}
		b.SetHold(false)
		start := time.Now()
		select {
		case <-b.Done():
		case <-time.After(3 * timeout):
			t.Fatal("Done still open after the hold ended")
		}
		if took := time.Since(start); took < timeout-10*time.Millisecond {
			t.Errorf("Done %v after the hold ended, want at least %v", took, timeout)
		}
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
}

func TestRelayExhaustion(t *testing.T) {
	r, pool := startRelay(t, relayTestPorts, 2)
	b, err := r.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("second Open: %v, want ErrPortsExhausted", err)
	} else if s, ok := err.(interface{ SIPStatus() (int, string) }); !ok {
		t.Errorf("%v has no SIP status", err)
	} else if code, _ := s.SIPStatus(); code != 503 {
		t.Errorf("status %d, want 503", code)
	}
	if pool.InUse() != 2 || r.InUse() != 1 {
		t.Errorf("pool %d ports, relay %d bridges in use, want 2 and 1", pool.InUse(), r.InUse())
	}
	b.Close()
	b.Close()
	if pool.InUse() != 0 || r.InUse() != 0 {
		t.Errorf("after Close: pool %d ports, relay %d bridges in use", pool.InUse(), r.InUse())
	}

	// A pool with one pair left fails without keeping it.
	pool3, err := NewPortPool(relayTestPorts+100, relayTestPorts+105)
	if err != nil {
		t.Fatal(err)
	}
	r3, err := NewRelay(pool3, loopback)
	if err != nil {
		t.Fatal(err)
	}
	b3, err := r3.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r3.Open(); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("Open with one pair left: %v", err)
	}
	if pool3.InUse() != 2 {
		t.Errorf("pool has %d in use, want 2", pool3.InUse())
	}
	b3.Close()
}

// openFDs counts the process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

func TestRelayOpenCloseLeaksNothing(t *testing.T) {
	for _, running := range []bool{false, true} {
		name := "idle relay"
		if running {
			name = "running relay"
		}
		t.Run(name, func(t *testing.T) {
			pool, err := NewPortPool(relayTestPorts, relayTestPorts+39)
			if err != nil {
				t.Fatal(err)
			}
			before := openFDs(t)
			r, err := NewRelay(pool, loopback, WithRelayTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			if running {
				go func() { ran <- r.Run(ctx) }()
			}
			peer := relayPeer(t)
			open := make([]*Bridge, 0, 5)
			for i := range 1000 {
				b, err := r.Open()
				if err != nil {
					t.Fatalf("Open #%d: %v", i, err)
				}
				sendTo(t, peer, bridgeAddr(b, SideA, false), relayRTP(t, 1, 1, 1, nil))
				open = append(open, b)
				if len(open) == cap(open) {
					for _, b := range open {
						b.Close()
					}
					open = open[:0]
				}
			}
			for _, b := range open {
				b.Close()
			}
			if pool.InUse() != 0 || r.InUse() != 0 {
				t.Errorf("pool %d, relay %d in use", pool.InUse(), r.InUse())
			}
			if running {
				cancel()
				if err := <-ran; err != nil {
					t.Error(err)
				}
			}
			cancel()
			peer.Close()
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open before, %d after", before, after)
			}
		})
	}
}

func TestRelayRunEnds(t *testing.T) {
	pool, err := NewPortPool(relayTestPorts, relayTestPorts+7)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(pool, loopback)
	if err != nil {
		t.Fatal(err)
	}
	early, err := r.Open() // before Run: forwarded once Run runs
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()

	a, c := relayPeer(t), relayPeer(t)
	early.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	pkt := relayRTP(t, 1, 1, 1, []byte("early"))
	sendTo(t, a, bridgeAddr(early, SideA, false), pkt)
	expect(t, c, pkt, bridgeAddr(early, SideB, false))
	if _, err := r.Open(); err != nil {
		t.Fatal(err)
	}

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return")
	}
	if pool.InUse() != 0 || r.InUse() != 0 {
		t.Errorf("after Run: pool %d, relay %d in use", pool.InUse(), r.InUse())
	}
	if st := early.Stats(); st.A.Forwarded != 1 {
		t.Errorf("Stats after Run: %+v", st)
	}
	early.Close()
	if _, err := r.Open(); !errors.Is(err, ErrRelayClosed) {
		t.Errorf("Open after Run: %v", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, ErrRelayClosed) {
		t.Errorf("second Run: %v", err)
	}
	if pool.InUse() != 0 {
		t.Errorf("pool %d in use", pool.InUse())
	}
}

// TestRelayZeroAllocs checks that relaying a packet allocates nothing: the
// test's own sockets are connected, so their Write and Read do not either.
func TestRelayZeroAllocs(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2, WithRelayWorkers(1))
	b := openBridge(t, r)
	dial := func(s Side) *net.UDPConn {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(bridgeAddr(b, s, false)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, c := dial(SideA), dial(SideB)
	pkt := relayRTP(t, 1, 1, 1, make([]byte, 160))
	buf := make([]byte, 2048)
	// Latch both sides, B first: until A latched its packets go nowhere.
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Stats().B.Packets == 1 })
	if _, err := a.Write(pkt); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := a.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per relayed packet", allocs)
	}
}

func TestNewRelayOptions(t *testing.T) {
	pool, err := NewPortPool(relayTestPorts, relayTestPorts+1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pool *PortPool
		addr netip.Addr
		opts []RelayOption
		ok   bool
	}{
		{name: "defaults", pool: pool, addr: loopback, ok: true},
		{name: "all options", pool: pool, addr: loopback, ok: true, opts: []RelayOption{
			WithRelayTimeout(time.Second), WithRelayWorkers(3),
			WithRelayLogger(slog.New(slog.DiscardHandler)), WithRelayRegisterer(prometheus.NewRegistry()),
		}},
		{name: "IPv6", pool: pool, addr: netip.IPv6Loopback(), ok: true},
		{name: "no pool", addr: loopback},
		{name: "no address", pool: pool},
		{name: "every address", pool: pool, addr: netip.IPv4Unspecified(), ok: true},
		{name: "negative timeout", pool: pool, addr: loopback, opts: []RelayOption{WithRelayTimeout(-1)}},
		{name: "no workers", pool: pool, addr: loopback, opts: []RelayOption{WithRelayWorkers(0)}},
		{name: "nil logger", pool: pool, addr: loopback, opts: []RelayOption{WithRelayLogger(nil)}},
		{name: "nil registerer", pool: pool, addr: loopback, opts: []RelayOption{WithRelayRegisterer(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRelay(tc.pool, tc.addr, tc.opts...)
			if tc.ok != (err == nil) {
				t.Fatalf("NewRelay: %v, want ok=%t", err, tc.ok)
			}
			if r != nil && r.InUse() != 0 {
				t.Error("a new relay has bridges")
			}
		})
	}
}

// TestRelaySkipsBoundPort checks that a port another program holds (here
// the RTCP half of the first pair) is skipped: the bridge binds the next
// pairs and the held one goes back to the pool.
func TestRelaySkipsBoundPort(t *testing.T) {
	base, held := freePairs(t, 3)
	defer held.Close()
	pool, err := NewPortPool(base, base+5)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(pool, loopback)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	if a, c := b.sides[SideA].port, b.sides[SideB].port; a != base+2 || c != base+4 {
		t.Errorf("bridge ports %d and %d, want %d and %d (%d is held)", a, c, base+2, base+4, base+1)
	}
	if n := pool.InUse(); n != 2 {
		t.Errorf("pool has %d ports in use, want 2 (the refused one released)", n)
	}
}

// TestRelayReusesParkedSockets checks that a closed bridge's ports keep
// their sockets for the next bridge, and that what reached a parked port
// meanwhile is dropped rather than forwarded to the next call.
func TestRelayReusesParkedSockets(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		running := r.state == relayRunning
		r.mu.Unlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("relay not running after 5s")
		}
	}
	b1, err := r.Open()
	if err != nil {
		t.Fatal(err)
	}
	portA, fd := b1.Port(SideA), b1.sides[SideA].socks[rtpSock].fd
	staleTo := bridgeAddr(b1, SideA, false)
	b1.Close()

	a, c := relayPeer(t), relayPeer(t)
	stale := relayRTP(t, 0xdead, 1, 160, bytes.Repeat([]byte{1}, 160))
	sendTo(t, a, staleTo, stale)
	time.Sleep(20 * time.Millisecond) // let it reach the parked socket

	b2 := openBridge(t, r)
	if b2.Port(SideA) != portA || b2.sides[SideA].socks[rtpSock].fd != fd {
		t.Fatalf("second bridge has port %d fd %d, want the parked port %d fd %d",
			b2.Port(SideA), b2.sides[SideA].socks[rtpSock].fd, portA, fd)
	}
	b2.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b2.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	fresh := relayRTP(t, 0xaaaa, 2, 320, bytes.Repeat([]byte{2}, 160))
	sendTo(t, a, bridgeAddr(b2, SideA, false), fresh)
	// The first packet c gets must be the fresh one, not the stale one.
	expect(t, c, fresh, bridgeAddr(b2, SideB, false))
	if st := b2.Stats().Side(SideA); st.Packets != 1 {
		t.Errorf("side A counted %d packets, want 1 (the stale one drained)", st.Packets)
	}
}

// TestRelayEveryAddress runs a relay bound to every address (rtp.address
// ""): RTP a phone sends to any local address of the relay's port is
// forwarded, and leaves from the address the kernel picks towards the
// other phone, the one parley announces to it.
func TestRelayEveryAddress(t *testing.T) {
	pool, err := NewPortPool(relayTestPorts+200, relayTestPorts+203)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(pool, netip.IPv4Unspecified())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	b := openBridge(t, r)
	a, c := relayPeer(t), relayPeer(t)
	b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	other := netip.MustParseAddr("127.0.0.2")
	for i, to := range []netip.Addr{loopback, other} {
		fromA := relayRTP(t, 0xaaaa, uint16(i), uint32(160*i), []byte("caller"))
		fromC := relayRTP(t, 0xcccc, uint16(i), uint32(160*i), []byte("callee"))
		sendTo(t, a, netip.AddrPortFrom(to, uint16(b.Port(SideA))), fromA)
		expect(t, c, fromA, bridgeAddr(b, SideB, false))
		sendTo(t, c, netip.AddrPortFrom(to, uint16(b.Port(SideB))), fromC)
		expect(t, a, fromC, bridgeAddr(b, SideA, false))
	}
}

// TestRelayZeroTimeout checks that a relay timeout of 0 (rtp.timeout: 0)
// never ends a silent bridge.
func TestRelayZeroTimeout(t *testing.T) {
	r, _ := startRelay(t, relayTestPorts, 2, WithRelayTimeout(0))
	b := openBridge(t, r)
	idle := make(chan struct{}, 1)
	b.OnIdle(func() { idle <- struct{}{} })
	select {
	case <-b.Done():
		t.Fatal("a silent bridge ended with no timeout")
	case <-idle:
		t.Fatal("OnIdle ran with no timeout")
	case <-time.After(300 * time.Millisecond): // the timeout-less worker never scans
	}
}
