package media

import (
	"net/netip"
	"testing"
	"time"
)

// arrival is one packet for rtpReceiver: header fields and arrival time.
type arrival struct {
	ssrc uint32
	seq  uint16
	ts   uint32
	at   time.Duration
}

// paced returns n packets of source ssrc from seq on, 20 ms and 160
// timestamp units apart, arriving exactly on time, minus those in skip.
func paced(ssrc uint32, seq uint16, n int, skip ...int) []arrival {
	gone := map[int]bool{}
	for _, s := range skip {
		gone[s] = true
	}
	var out []arrival
	for i := range n {
		if !gone[i] {
			out = append(out, arrival{ssrc, seq + uint16(i), uint32(1000 + 160*i), time.Duration(i) * 20 * time.Millisecond})
		}
	}
	return out
}

func TestRTPReceiver(t *testing.T) {
	late := paced(1, 0, 10)
	late[5].at += 10 * time.Millisecond
	reordered := paced(1, 0, 10)
	reordered[3], reordered[4] = reordered[4], reordered[3]

	tests := []struct {
		name    string
		packets []arrival
		rate    int
		lost    uint64
		jitter  time.Duration
	}{
		{name: "in order, on time", packets: paced(1, 0, 50)},
		{name: "gaps", packets: paced(1, 100, 50, 3, 10, 11, 12), lost: 4},
		{name: "across the wrap", packets: paced(1, 65530, 20, 4, 8), lost: 2},
		{name: "reordered", packets: reordered},
		{name: "duplicate", packets: append(paced(1, 0, 5), paced(1, 4, 1)...)},
		{name: "new source keeps old loss", packets: append(paced(1, 0, 10, 5), paced(2, 5000, 10, 1)...), lost: 2},
		// RFC 3550 A.8 by hand, in 1/16 units: |D| = 80 twice gives
		// J = 80, then 80+80-(88>>4) = 155; three on-time packets decay it
		// by (J+8)>>4 each: 145, 136, 127.
		{name: "one late packet", packets: late, jitter: time.Duration(127 * int64(time.Second) / (16 * 8000))},
		{name: "clock rate 16000, on time", rate: 16000, packets: paced(1, 0, 10)},
		{name: "leaps twice: restart", packets: append(paced(1, 0, 5), paced(1, 30000, 5)...)},
		{name: "one stray leap is not counted", packets: append(append(paced(1, 0, 5), arrival{1, 40000, 0, 0}), paced(1, 5, 5)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r rtpReceiver
			if tc.rate != 0 {
				r.setRate(tc.rate)
			}
			for _, p := range tc.packets {
				ts := p.ts
				if tc.rate != 0 {
					ts = p.ts * uint32(tc.rate/8000)
				}
				r.update(p.ssrc, p.seq, ts, p.at.Microseconds())
			}
			if got := r.lost(); got != tc.lost {
				t.Errorf("lost %d, want %d", got, tc.lost)
			}
			if got := r.jitterDuration(); got != tc.jitter {
				t.Errorf("jitter %v, want %v", got, tc.jitter)
			}
		})
	}
}

func TestParseReceptionReport(t *testing.T) {
	rr := receiverReport(1, 64, 1000, 77)
	sr := make([]byte, 52)
	sr[0], sr[1], sr[3] = 2<<6|1, rtcpSR, 12
	copy(sr[28:], rr[8:])
	srNoBlocks := make([]byte, 28)
	srNoBlocks[0], srNoBlocks[1], srNoBlocks[3] = 2<<6, rtcpSR, 6
	sdes := []byte{2<<6 | 1, 202, 0, 1, 0, 0, 0, 1}

	tests := []struct {
		name string
		pkt  []byte
		want receptionReport
		ok   bool
	}{
		{name: "RR", pkt: rr, want: receptionReport{64, 1000, 77}, ok: true},
		{name: "SR", pkt: sr, want: receptionReport{64, 1000, 77}, ok: true},
		{name: "SR without blocks, then RR", pkt: append(append([]byte{}, srNoBlocks...), rr...), want: receptionReport{64, 1000, 77}, ok: true},
		{name: "SDES then RR", pkt: append(append([]byte{}, sdes...), rr...), want: receptionReport{64, 1000, 77}, ok: true},
		{name: "negative cumulative loss", pkt: receiverReport(1, 0, -3, 5), want: receptionReport{0, 0, 5}, ok: true},
		{name: "truncated", pkt: rr[:30]},
		{name: "SDES only", pkt: sdes},
		{name: "empty"},
		{name: "not version 2", pkt: append([]byte{0x41}, rr[1:]...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseReceptionReport(tc.pkt)
			if ok != tc.ok || got != tc.want {
				t.Errorf("got %+v, %t, want %+v, %t", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseReceptionReport feeds RTCP from the network to the parser: it
// must not panic nor read past the packet.
func FuzzParseReceptionReport(f *testing.F) {
	f.Add(receiverReport(1, 64, 1000, 77))
	f.Add([]byte{2<<6 | 1, 202, 0, 1, 0, 0, 0, 1})
	f.Add([]byte{0x81, 0xc8, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseReceptionReport(b)
	})
}

// FuzzBridgeRoute feeds whatever arrives on a port to the forwarding rules.
func FuzzBridgeRoute(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, uint8(0))
	f.Add(receiverReport(1, 64, 1000, 77), uint8(3))
	// A range wider than the one pair it opens: under go test -fuzz this
	// setup runs in the coordinator and again in each worker process, and
	// each must find a pair of its own.
	pool, err := NewPortPool(relayTestPorts, relayTestPorts+63)
	if err != nil {
		f.Fatal(err)
	}
	r, err := NewRelay(pool, loopback, WithRelayWorkers(1))
	if err != nil {
		f.Fatal(err)
	}
	b, err := r.Open()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	b.SetPeer(SideA, netip.MustParseAddrPort("127.0.0.1:9"), netip.AddrPort{}, true)
	from := netip.MustParseAddrPort("127.0.0.1:10")
	f.Fuzz(func(t *testing.T, pkt []byte, where uint8) {
		b.w.mu.Lock()
		defer b.w.mu.Unlock()
		b.route(Side(where&1), int(where>>1&1), pkt, from, 1)
	})
}
