package media

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRelayMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, _ := startRelay(t, relayTestPorts, 4, WithRelayRegisterer(reg))
	b := openBridge(t, r)
	a, c := relayPeer(t), relayPeer(t)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	for i := range 10 {
		if i == 4 {
			continue // lost
		}
		pkt := relayRTP(t, 1, uint16(i), uint32(160*i), make([]byte, 20))
		sendTo(t, a, bridgeAddr(b, SideA, false), pkt)
		expect(t, c, pkt, bridgeAddr(b, SideB, false))
	}
	sendTo(t, a, bridgeAddr(b, SideA, false), []byte("junk"))
	waitFor(t, func() bool { return b.Stats().A.Dropped == 1 })

	want := `
# HELP parley_rtp_bytes_total Bytes of the RTP packets accepted from the sides of relayed calls, headers included.
# TYPE parley_rtp_bytes_total counter
parley_rtp_bytes_total 288
# HELP parley_rtp_packets_dropped_total Datagrams on relay ports that were not forwarded: not RTP or RTCP, from an unlatched source, no destination, or a failed send.
# TYPE parley_rtp_packets_dropped_total counter
parley_rtp_packets_dropped_total 1
# HELP parley_rtp_packets_forwarded_total RTP packets relayed to the other side of a call.
# TYPE parley_rtp_packets_forwarded_total counter
parley_rtp_packets_forwarded_total 9
# HELP parley_rtp_packets_total RTP packets accepted from the sides of relayed calls.
# TYPE parley_rtp_packets_total counter
parley_rtp_packets_total 9
# HELP parley_rtp_ports_in_use UDP ports bound by the relay: RTP and RTCP facing each side, four per call.
# TYPE parley_rtp_ports_in_use gauge
parley_rtp_ports_in_use 4
`
	names := []string{"parley_rtp_bytes_total", "parley_rtp_packets_dropped_total", "parley_rtp_packets_forwarded_total",
		"parley_rtp_packets_total", "parley_rtp_ports_in_use"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	b.Close()
	if got := testutil.ToFloat64(r.metrics.lost); got != 1 {
		t.Errorf("lost_total %v, want 1", got)
	}
	if got := testutil.CollectAndCount(r.metrics.jitter); got != 1 {
		t.Errorf("%d jitter histograms", got)
	}
	if n, err := testutil.GatherAndCount(reg, "parley_rtp_ports_in_use"); err != nil || n != 1 {
		t.Errorf("ports gauge: %d, %v", n, err)
	}

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 8 {
		t.Errorf("%d metrics registered, want 8", len(mfs))
	}

	// A second relay on the same registry fails cleanly.
	if _, err := NewRelay(r.pool, loopback, WithRelayRegisterer(reg)); err == nil {
		t.Error("registered the metrics twice")
	}
}
