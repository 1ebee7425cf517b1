package dialog

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the B2BUA's Prometheus collectors. Labels are bounded: SIP
// methods outside the known set are counted as "other".
type metrics struct {
	calls      *prometheus.GaugeVec
	callsTotal *prometheus.CounterVec
	requests   *prometheus.CounterVec
	responses  *prometheus.CounterVec
	setup      prometheus.Histogram
	transfers  *prometheus.CounterVec
	// dtmf counts keys by what they came as and went as (dtmf.go);
	// dtmfRefused keys parley would convert but refused.
	dtmf        *prometheus.CounterVec
	dtmfRefused prometheus.Counter

	// The children counted on every message, looked up once: a
	// WithLabelValues hashes its labels each time, and the status code
	// label would be formatted each time.
	byState  [Closed + 1]prometheus.Gauge
	byMethod map[string]prometheus.Counter // knownMethods and "other"; read-only
	respMu   sync.RWMutex
	byResp   map[respKey]prometheus.Counter
}

type respKey struct {
	method string
	code   int
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_calls",
			Help: "Calls in progress, by session state.",
		}, []string{"state"}),
		callsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_calls_total",
			Help: "Calls ended, by result.",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sip_requests_total",
			Help: "SIP requests received, by method.",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sip_responses_total",
			Help: "SIP responses sent by parley, by request method and status code.",
		}, []string{"method", "code"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_call_setup_seconds",
			Help:    "Time from a call's INVITE to its answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_transfers_total",
			Help: "Call transfers parley carried out (REFER, REFER with Replaces, INVITE with Replaces), by result.",
		}, []string{"result"}),
		dtmf: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_dtmf_total",
			Help: "DTMF keys passed between the legs of calls that convert them, by what they came as (info, rfc4733) and went as.",
		}, []string{"from", "to"}),
		dtmfRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_dtmf_refused_total",
			Help: "DTMF keys in SIP INFO that parley refused to convert to RFC 4733 events: over the rate limit or not sendable.",
		}),
	}
	for st := Establishing; st < Closed; st++ {
		m.byState[st] = m.calls.WithLabelValues(st.String())
	}
	m.byMethod = map[string]prometheus.Counter{"other": m.requests.WithLabelValues("other")}
	for name := range knownMethods {
		m.byMethod[name] = m.requests.WithLabelValues(name)
	}
	m.byResp = map[respKey]prometheus.Counter{}
	for _, r := range []string{resultAnswered, resultBusy, resultCancelled, resultNotFound, resultUnavailable, resultRejected, resultFailed} {
		m.callsTotal.WithLabelValues(r)
	}
	m.transfers.WithLabelValues("done")
	m.transfers.WithLabelValues("failed")
	// Every conversion parley makes is served from the start, so a
	// dashboard's rate() has a series before the first key.
	for _, p := range [][2]string{{dtmfInfo, dtmfInfo}, {dtmfInfo, dtmfRFC4733}, {dtmfRFC4733, dtmfInfo}} {
		m.dtmf.WithLabelValues(p[0], p[1])
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.callsTotal, m.requests, m.responses, m.setup, m.transfers, m.dtmf, m.dtmfRefused)
	}
	return m
}

// Call results, the values of parley_calls_total's result label.
const (
	resultAnswered    = "answered"
	resultBusy        = "busy"
	resultCancelled   = "cancelled"
	resultNotFound    = "not_found"
	resultUnavailable = "unavailable"
	resultRejected    = "rejected"
	resultFailed      = "failed"
	// resultDetached is a call left to the next process (Detach).
	resultDetached = "detached"
	// resultTransferred ends the call an attended transfer joined into
	// another.
	resultTransferred = "transferred"
)

// resultFor names the result of a call that failed with a final status.
func resultFor(code int) string {
	switch {
	case code >= 200 && code < 300:
		return resultAnswered
	case code == 486 || code == 600:
		return resultBusy
	case code == 487:
		return resultCancelled
	case code == 404 || code == 604:
		return resultNotFound
	case code == 480 || code == 408:
		return resultUnavailable
	case code == 401 || code == 403 || code == 407 || code == 488 || code == 603 || code == 503:
		return resultRejected
	}
	return resultFailed
}

var knownMethods = map[string]bool{
	"INVITE": true, "ACK": true, "BYE": true, "CANCEL": true, "REGISTER": true, "OPTIONS": true,
	"UPDATE": true, "INFO": true, "PRACK": true, "SUBSCRIBE": true, "NOTIFY": true, "REFER": true,
	"MESSAGE": true, "PUBLISH": true,
}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}

// request counts a request received.
// transfer counts a transfer that ended, done (ok) or failed.
func (m *metrics) transfer(ok bool) {
	if ok {
		m.transfers.WithLabelValues("done").Inc()
	} else {
		m.transfers.WithLabelValues("failed").Inc()
	}
}

func (m *metrics) request(method string) {
	m.byMethod[methodLabel(method)].Inc()
}

// dtmfKey counts a key that came as from and went as to (info or
// rfc4733).
func (m *metrics) dtmfKey(from, to string) {
	m.dtmf.WithLabelValues(from, to).Inc()
}

// state moves the calls gauge from state from to state to.
func (m *metrics) state(from, to State) {
	if g := m.byState[from]; from != Idle && g != nil {
		g.Dec()
	}
	if g := m.byState[to]; to != Closed && g != nil {
		g.Inc()
	}
}

// response counts a response sent.
func (m *metrics) response(method string, code int) {
	k := respKey{methodLabel(method), code}
	m.respMu.RLock()
	c := m.byResp[k]
	m.respMu.RUnlock()
	if c == nil {
		c = m.responses.WithLabelValues(k.method, strconv.Itoa(code))
		m.respMu.Lock()
		m.byResp[k] = c
		m.respMu.Unlock()
	}
	c.Inc()
}
