package trunk

import "github.com/prometheus/client_golang/prometheus"

// metrics are the trunks' metrics, labelled by trunk name (bounded: the
// config's trunks).
type metrics struct {
	registered *prometheus.GaugeVec
	failures   *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		registered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_trunk_registered",
			Help: "1 while the provider holds the trunk's registration, else 0.",
		}, []string{"trunk"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_trunk_registration_failures_total",
			Help: "Registration attempts to the trunk's provider that failed (refused credentials, no answer, an error).",
		}, []string{"trunk"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.registered, m.failures} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) set(trunk string, registered bool) {
	v := 0.0
	if registered {
		v = 1
	}
	m.registered.WithLabelValues(trunk).Set(v)
}

func (m *metrics) failure(trunk string) { m.failures.WithLabelValues(trunk).Inc() }
