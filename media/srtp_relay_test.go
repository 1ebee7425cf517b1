//go:build linux

package media

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
)

// srtpTestPorts are the relay ports of the SRTP tests.
const srtpTestPorts = 6500

// phoneContexts are what an SRTP phone holds: a context that encrypts with
// its own key and one that decrypts with parley's.
func phoneContexts(t testing.TB, own, parley sdesKey) (enc, dec *srtp.Context) {
	t.Helper()
	var err error
	if enc, err = contextOf(own); err != nil {
		t.Fatal(err)
	}
	if dec, err = contextOf(parley); err != nil {
		t.Fatal(err)
	}
	return enc, dec
}

// readPacket reads one datagram on c, from from.
func readPacket(t testing.TB, c *net.UDPConn, from netip.AddrPort) []byte {
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
	return buf[:n]
}

// TestRelaySRTPToPlain relays between an SRTP phone (pion/srtp on a real
// UDP socket) and a plain one: each gets the other's packets, decrypted or
// encrypted with the right key, RTP and RTCP; forged packets are dropped
// and counted, and latch nothing.
func TestRelaySRTPToPlain(t *testing.T) {
	for _, suite := range []cryptoSuite{cryptoSuites[0], cryptoSuites[1], cryptoSuites[2]} {
		t.Run(suite.name, func(t *testing.T) {
			r, _ := startRelay(t, srtpTestPorts, 2)
			b := openBridge(t, r)
			a, c := relayPeer(t), relayPeer(t)
			b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, true)
			b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, true)
			phoneKey, parleyKey := newKey(1, suite), newKey(1, suite)
			if err := b.SetSRTP(SideA, &SRTPKeys{Remote: phoneKey, Local: parleyKey}); err != nil {
				t.Fatal(err)
			}
			enc, dec := phoneContexts(t, phoneKey, parleyKey)

			// A stranger with another key sends first: dropped, and it
			// does not latch the side.
			stranger := relayPeer(t)
			forger, _ := phoneContexts(t, newKey(1, suite), parleyKey)
			forged, err := forger.EncryptRTP(nil, relayRTP(t, 0xaaaa, 1, 160, make([]byte, 160)), nil)
			if err != nil {
				t.Fatal(err)
			}
			sendTo(t, stranger, bridgeAddr(b, SideA, false), forged)
			waitFor(t, func() bool { return b.Stats().A.SRTPFailures == 1 })

			for i := range 50 {
				plainA := relayRTP(t, 0xaaaa, uint16(100+i), uint32(160*i), bytes.Repeat([]byte{byte(i)}, 160))
				sent, err := enc.EncryptRTP(nil, plainA, nil)
				if err != nil {
					t.Fatal(err)
				}
				sendTo(t, a, bridgeAddr(b, SideA, false), sent)
				expect(t, c, plainA, bridgeAddr(b, SideB, false))

				plainC := relayRTP(t, 0xcccc, uint16(65530+i), uint32(160*i), bytes.Repeat([]byte{^byte(i)}, 160))
				sendTo(t, c, bridgeAddr(b, SideB, false), plainC)
				got := readPacket(t, a, bridgeAddr(b, SideA, false))
				if bytes.Equal(got, plainC) {
					t.Fatal("the SRTP phone got plain RTP")
				}
				clear, err := dec.DecryptRTP(nil, got, nil)
				if err != nil {
					t.Fatalf("packet %d: decrypting what parley sent: %v", i, err)
				}
				if !bytes.Equal(clear, plainC) {
					t.Fatalf("packet %d: decrypted % x, want % x", i, clear, plainC)
				}
			}

			// SRTCP both ways, muxed on the RTP port (RFC 5761).
			rr := receiverReport(0xaaaa, 12, 3, 40)
			srr, err := enc.EncryptRTCP(nil, rr, nil)
			if err != nil {
				t.Fatal(err)
			}
			sendTo(t, a, bridgeAddr(b, SideA, false), srr)
			expect(t, c, rr, bridgeAddr(b, SideB, false))
			rrC := receiverReport(0xcccc, 1, 2, 3)
			sendTo(t, c, bridgeAddr(b, SideB, false), rrC)
			clear, err := dec.DecryptRTCP(nil, readPacket(t, a, bridgeAddr(b, SideA, false)), nil)
			if err != nil || !bytes.Equal(clear, rrC) {
				t.Fatalf("SRTCP to the phone: % x, %v", clear, err)
			}

			// A replayed packet and a tampered one are dropped and counted.
			replay, _ := enc.EncryptRTP(nil, relayRTP(t, 0xaaaa, 1000, 0, make([]byte, 160)), nil)
			sendTo(t, a, bridgeAddr(b, SideA, false), replay)
			expect(t, c, relayRTP(t, 0xaaaa, 1000, 0, make([]byte, 160)), bridgeAddr(b, SideB, false))
			sendTo(t, a, bridgeAddr(b, SideA, false), replay)
			tampered := bytes.Clone(replay)
			tampered[2]++ // seq 1001
			tampered[20] ^= 1
			sendTo(t, a, bridgeAddr(b, SideA, false), tampered)
			sendTo(t, a, bridgeAddr(b, SideA, false), []byte{0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xaa, 0xaa, 1}) // too short
			waitFor(t, func() bool { return b.Stats().A.SRTPFailures == 4 })
			expectNothing(t, c)

			st := b.Stats()
			if st.A.Source != addrOf(a) || st.A.SRTP != suite.name || st.B.SRTP != "" || st.A.Packets != 51 || st.A.RTCPPackets != 1 {
				t.Errorf("stats: %+v", st)
			}
			if got := r.counts().srtpFailures; got != 4 {
				t.Errorf("relay counts %d SRTP failures, want 4", got)
			}
		})
	}
}

// TestRelaySRTPBothSides relays between two SRTP phones with different keys
// on each leg: parley decrypts with one and encrypts with the other.
func TestRelaySRTPBothSides(t *testing.T) {
	r, _ := startRelay(t, srtpTestPorts+10, 2)
	b := openBridge(t, r)
	a, c := relayPeer(t), relayPeer(t)
	b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	keys := [2]SRTPKeys{
		{Remote: newKey(1, cryptoSuites[0]), Local: newKey(1, cryptoSuites[0])},
		{Remote: newKey(2, cryptoSuites[1]), Local: newKey(2, cryptoSuites[1])},
	}
	for s := range keys {
		if err := b.SetSRTP(Side(s), &keys[s]); err != nil {
			t.Fatal(err)
		}
	}
	encA, _ := phoneContexts(t, keys[SideA].Remote, keys[SideA].Local)
	_, decC := phoneContexts(t, keys[SideB].Remote, keys[SideB].Local)
	for i := range 20 {
		plain := relayRTP(t, 7, uint16(i), uint32(160*i), bytes.Repeat([]byte{byte(i)}, 160))
		sent, _ := encA.EncryptRTP(nil, plain, nil)
		sendTo(t, a, bridgeAddr(b, SideA, false), sent)
		got, err := decC.DecryptRTP(nil, readPacket(t, c, bridgeAddr(b, SideB, false)), nil)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("packet %d: % x, %v", i, got, err)
		}
	}
	// The same keys again keep the contexts (and their rollover state).
	sec := b.sides[SideA].sec
	if err := b.SetSRTP(SideA, &keys[SideA]); err != nil || b.sides[SideA].sec != sec {
		t.Error("SetSRTP with the same keys made new contexts")
	}
}

// Each context keeps state for at most maxSRTPStreams SSRCs: the
// encrypting one those the plain side makes up, the decrypting one those
// of the phone with the key.
func TestRelaySRTPBoundsStreams(t *testing.T) {
	phone := newKey(1, cryptoSuites[0])
	sec, err := newSRTPSide(phone, newKey(1, cryptoSuites[0]))
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := phoneContexts(t, phone, phone)
	buf := make([]byte, 0, 2048)
	for i := range maxSRTPStreams + 5 {
		pkt := append(buf[:0], relayRTP(t, uint32(i), 1, 0, make([]byte, 20))...)
		_, ok := sec.encryptRTP(pkt)
		if ok != (i < maxSRTPStreams) {
			t.Errorf("SSRC %d: encrypted %t", i, ok)
		}
		in, _ := enc.EncryptRTP(nil, relayRTP(t, uint32(100+i), 1, 0, make([]byte, 20)), nil)
		_, err := sec.decryptRTP(append(buf[:0], in...))
		if (err == nil) != (i < maxSRTPStreams) {
			t.Errorf("SSRC %d from the phone: %v", 100+i, err)
		}
	}
	// A known stream goes on.
	in, _ := enc.EncryptRTP(nil, relayRTP(t, 100, 2, 0, make([]byte, 20)), nil)
	if _, err := sec.decryptRTP(append(buf[:0], in...)); err != nil {
		t.Errorf("known SSRC: %v", err)
	}
}

// BenchmarkRouteSRTP is the per-packet cost of route on a bridge between
// an SRTP side and a plain one, in each direction, against plain RTP on
// both: decrypting or encrypting a 172-byte G.711 packet in place.
func BenchmarkRouteSRTP(b *testing.B) {
	for _, tc := range []struct {
		name string
		srtp bool
		in   Side
	}{
		{"rtp-to-rtp", false, SideB},
		{"rtp-to-srtp", true, SideB},
		{"srtp-to-rtp", true, SideA},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, _ := startRelay(b, srtpTestPorts+20, 2)
			br := openBridge(b, r)
			br.SetPeer(SideA, netip.MustParseAddrPort("127.0.0.1:7390"), netip.AddrPort{}, false)
			br.SetPeer(SideB, netip.MustParseAddrPort("127.0.0.1:7392"), netip.AddrPort{}, false)
			keys := SRTPKeys{Remote: newKey(1, cryptoSuites[0]), Local: newKey(1, cryptoSuites[0])}
			if tc.srtp {
				if err := br.SetSRTP(SideA, &keys); err != nil {
					b.Fatal(err)
				}
			}
			enc, _ := phoneContexts(b, keys.Remote, keys.Local)
			from := netip.MustParseAddrPort("127.0.0.1:7390")
			if tc.in == SideB {
				from = netip.MustParseAddrPort("127.0.0.1:7392")
			}
			// Packets the phone sent, encrypted ahead a ring at a time so
			// that the phone's cost is not measured.
			const ring = 4096
			pkts := make([][]byte, ring)
			buf := make([]byte, 2048)
			seq := uint16(0)
			fill := func() {
				for i := range pkts {
					p := relayRTP(b, 0xaaaa, seq, uint32(seq)*160, make([]byte, 160))
					seq++
					if tc.in == SideA && tc.srtp {
						p, _ = enc.EncryptRTP(nil, p, nil)
					}
					pkts[i] = p
				}
			}
			fill()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%ring == 0 && i > 0 {
					b.StopTimer()
					fill()
					b.StartTimer()
				}
				n := copy(buf, pkts[i%ring])
				br.w.mu.Lock()
				_, _, dst, _, _ := br.route(tc.in, rtpSock, buf[:n], from, r.now())
				br.w.mu.Unlock()
				if dst == nil {
					b.Fatalf("packet %d dropped", i)
				}
			}
		})
	}
}

// DTMF interworking with an SRTP leg: keys parley injects into the SRTP
// phone's stream are encrypted with parley's key, and RFC 4733 events the
// SRTP phone sends are decrypted before they are taken out and reported.
func TestRelaySRTPDTMF(t *testing.T) {
	r, _ := startRelay(t, srtpTestPorts+30, 2)
	b := openBridge(t, r)
	a, c := relayPeer(t), relayPeer(t)
	b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	keys := SRTPKeys{Remote: newKey(1, cryptoSuites[0]), Local: newKey(1, cryptoSuites[0])}
	if err := b.SetSRTP(SideA, &keys); err != nil {
		t.Fatal(err)
	}
	enc, dec := phoneContexts(t, keys.Remote, keys.Local)
	b.SetEvents([2]int{101, -1}, [2]int{8000, 8000})
	got := make(chan Event, 4)
	b.OnEvent(func(from Side, ev Event) { got <- ev })

	if err := b.SendEvent(SideA, Event{Code: 5, Duration: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	clear, err := dec.DecryptRTP(nil, readPacket(t, a, bridgeAddr(b, SideA, false)), nil)
	if err != nil || len(clear) != 16 || clear[1]&0x7f != 101 || clear[12] != 5 {
		t.Fatalf("injected key as the SRTP phone decrypts it: % x, %v", clear, err)
	}

	for i := range 3 {
		ev := relayRTP(t, 9, uint16(10+i), 1000, []byte{7, 10, 0, byte(160 * (i + 1))})
		ev[1] = 101
		if i == 0 {
			ev[1] |= 0x80
		}
		if i == 2 {
			ev[13] |= 0x80 // end
		}
		sent, _ := enc.EncryptRTP(nil, ev, nil)
		sendTo(t, a, bridgeAddr(b, SideA, false), sent)
	}
	select {
	case ev := <-got:
		if ev.Code != 7 {
			t.Errorf("reported key %d, want 7", ev.Code)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the SRTP phone's key was not reported")
	}
}

// FuzzSRTPDecrypt feeds what the network may send to an SRTP side: it must
// never panic, and nothing but a packet under the side's key authenticates.
func FuzzSRTPDecrypt(f *testing.F) {
	key := sdesKey{tag: 1, suite: cryptoSuites[0], key: bytes.Repeat([]byte{7}, 30)}
	enc, err := contextOf(key)
	if err != nil {
		f.Fatal(err)
	}
	pkt := []byte{0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 1, 2, 3, 4}
	good, _ := enc.EncryptRTP(nil, pkt, nil)
	rr := []byte{0x81, 201, 0, 1, 0, 0, 0, 9}
	goodRTCP, _ := enc.EncryptRTCP(nil, rr, nil)
	f.Add(good)
	f.Add(goodRTCP)
	f.Add([]byte{0x80, 0xcc, 0, 3, 1, 2, 3, 4, 'P', 'I', 'N', 'G', 'P', 'O', 'N', 'G'})
	f.Add(pkt)
	f.Fuzz(func(t *testing.T, data []byte) {
		sec, err := newSRTPSide(key, key)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(data), len(data)+64)
		copy(buf, data)
		if out, err := sec.decryptRTP(buf); err == nil && !bytes.Equal(data, good) {
			t.Fatalf("% x authenticated as % x", data, out)
		}
		copy(buf, data)
		_, _ = sec.decryptRTCP(buf[:len(data)])
	})
}

// A new key of the phone's (a re-INVITE) keeps parley's encrypting
// context, so its rollover counters and SRTCP indexes go on: a fresh one
// under the same key would reuse keystream.
func TestRelaySRTPRekeyKeepsParleysContext(t *testing.T) {
	r, _ := startRelay(t, srtpTestPorts+40, 2)
	b := openBridge(t, r)
	local := newKey(1, cryptoSuites[0])
	if err := b.SetSRTP(SideA, &SRTPKeys{Remote: newKey(1, cryptoSuites[0]), Local: local}); err != nil {
		t.Fatal(err)
	}
	tx := b.sides[SideA].sec.tx
	if err := b.SetSRTP(SideA, &SRTPKeys{Remote: newKey(1, cryptoSuites[0]), Local: local}); err != nil {
		t.Fatal(err)
	}
	if b.sides[SideA].sec.tx != tx {
		t.Error("a new remote key made a new context under parley's unchanged key")
	}
	if err := b.SetSRTP(SideA, &SRTPKeys{Remote: newKey(1, cryptoSuites[0]), Local: newKey(1, cryptoSuites[0])}); err != nil {
		t.Fatal(err)
	}
	if b.sides[SideA].sec.tx == tx {
		t.Error("a new key of parley's kept the old context")
	}
}
