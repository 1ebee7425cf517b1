package media

import "github.com/prometheus/client_golang/prometheus"

// relayMetrics are the metrics a relay updates itself; the packet counters
// are read from the workers' totals at scrape time instead, so the hot path
// never calls into Prometheus.
type relayMetrics struct {
	lost   prometheus.Counter
	jitter prometheus.Histogram
}

// registerRelayMetrics registers r's metrics on reg, or none of them.
func registerRelayMetrics(r *Relay, reg prometheus.Registerer) (*relayMetrics, error) {
	m := &relayMetrics{
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_rtp_packets_lost_total",
			Help: "RTP packets the sides sent that never reached parley, counted when a bridge closes.",
		}),
		jitter: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_rtp_jitter_seconds",
			Help:    "Interarrival jitter of each side's RTP at parley when its bridge closed.",
			Buckets: []float64{.001, .002, .005, .01, .02, .03, .05, .1, .2, .5},
		}),
	}
	counter := func(name, help string, get func(relayCounts) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(r.counts())) })
	}
	collectors := []prometheus.Collector{
		counter("parley_rtp_packets_total", "RTP packets accepted from the sides of relayed calls.",
			func(c relayCounts) uint64 { return c.packets }),
		counter("parley_rtp_bytes_total", "Bytes of the RTP packets accepted from the sides of relayed calls, headers included.",
			func(c relayCounts) uint64 { return c.bytes }),
		counter("parley_rtp_packets_forwarded_total", "RTP packets relayed to the other side of a call.",
			func(c relayCounts) uint64 { return c.forwarded }),
		counter("parley_rtp_packets_dropped_total", "Datagrams on relay ports that were not forwarded: not RTP or RTCP, from an unlatched source, no destination, or a failed send.",
			func(c relayCounts) uint64 { return c.dropped }),
		counter("parley_srtp_auth_failures_total", "SRTP and SRTCP packets from the sides of relayed calls that did not authenticate or decrypt, dropped.",
			func(c relayCounts) uint64 { return c.srtpFailures }),
		m.lost,
		m.jitter,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_rtp_ports_in_use",
			Help: "UDP ports bound by the relay: RTP and RTCP facing each side, four per call.",
		}, func() float64 { return float64(4 * r.InUse()) }),
	}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

// bridgeClosed records the final loss and jitter of a bridge. It is safe on
// a nil receiver (no registerer).
func (m *relayMetrics) bridgeClosed(st BridgeStats) {
	if m == nil {
		return
	}
	for _, s := range []SideStats{st.A, st.B} {
		m.lost.Add(float64(s.Lost))
		if s.Packets > 1 {
			m.jitter.Observe(s.Jitter.Seconds())
		}
	}
}
