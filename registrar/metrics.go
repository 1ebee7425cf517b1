package registrar

import (
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, kept here so the lint test sees every one.
const (
	metricRegistrations = "parley_registrations"
	metricAuthFailures  = "parley_auth_failures_total"
	metricContacts      = "parley_contacts"
	metricTransports    = "parley_contacts_by_transport"
	metricContactRTT    = "parley_contact_rtt_seconds"
	metricStoreErrors   = "parley_store_errors_total"
)

// newAuthFailures counts answers to a challenge that were wrong. What counts
// and what does not:
//
//   - counted: a wrong response digest, a user name that is not an account
//     (answered like a wrong password), and a stale nonce whose answer was
//     also wrong;
//   - not counted: a request without credentials (that is how every client
//     starts), credentials for another realm, a stale nonce answered
//     correctly (the client knows the password, it only held an old nonce),
//     a nonce sealed with another secret (what every phone holds after a
//     restart), and malformed credentials (400, a broken client rather than a
//     guess at a password).
//
// The only label is the method, bounded to REGISTER, INVITE and other.
func newAuthFailures() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricAuthFailures,
		Help: "Digest answers that were wrong: bad password or unknown user.",
	}, []string{"method"})
}

func newRegistrationsGauge() prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricRegistrations,
		Help: "Registered contact bindings that have not expired.",
	})
}

// newContactsGauge counts bindings by what qualification last found. The
// only label is state, one of reachable, unreachable and unknown; all three
// are always present.
func newContactsGauge() *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricContacts,
		Help: "Registered contact bindings by reachability: reachable, unreachable, or unknown (not yet qualified).",
	}, []string{"state"})
	for _, s := range []string{"reachable", "unreachable", "unknown"} {
		g.WithLabelValues(s)
	}
	return g
}

// Transports are the values of parley_contacts_by_transport's label, the
// transports a phone registers over.
var Transports = [...]string{"udp", "tcp", "tls"}

// newTransportsGauge counts bindings by the transport their REGISTER came
// over. The only label is transport, one of Transports; all are always
// present.
func newTransportsGauge() *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricTransports,
		Help: "Registered contact bindings by the transport they registered over: udp, tcp or tls.",
	}, []string{"transport"})
	for _, tr := range Transports {
		g.WithLabelValues(tr)
	}
	return g
}

// newContactRTT observes the round-trip time of every answered qualify
// ping. The buckets run from LAN (1 ms) to a UDP ping answered only after
// retransmissions (several seconds).
func newContactRTT() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    metricContactRTT,
		Help:    "Round-trip time of OPTIONS pings to registered contacts that were answered.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
}

// Values of the op label of parley_store_errors_total.
var storeOps = []string{"save", "load", "get", "ping", "decode"}

// newStoreErrors counts failed operations on a shared Store. The labels are
// store (its kind, e.g. redis) and op: save (a batch write), load (reading
// every user), get (reading users another node changed), ping (the health
// check) and decode (a stored record that is not valid JSON). A Store that
// has it hands it to the Registrar, which registers it with the rest (see
// [WithMetrics]); every op is present from the start.
func newStoreErrors(store string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        metricStoreErrors,
		Help:        "Failed operations on the shared registration store, by operation.",
		ConstLabels: prometheus.Labels{"store": store},
	}, []string{"op"})
	for _, op := range storeOps {
		c.WithLabelValues(op)
	}
	return c
}

// methodLabel keeps the method label bounded.
func methodLabel(m sip.RequestMethod) string {
	switch m {
	case sip.REGISTER:
		return "REGISTER"
	case sip.INVITE:
		return "INVITE"
	}
	return "other"
}
