package registrar

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricNames lints every metric this package registers.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := newTestDigest(t, newFakeClock(), WithAuthMetrics(reg))
	r, err := New(d, NewMemoryStore(), WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, m := range []string{"REGISTER", "INVITE", "other"} {
		d.failures.WithLabelValues(m)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	// Bounded labels only: never a user, contact or address.
	allowed := map[string]map[string]bool{
		"method": {"REGISTER": true, "INVITE": true, "other": true},
		"state":  {"reachable": true, "unreachable": true, "unknown": true},
		// parley_contacts_by_transport (TLS, part 10).
		"transport": {"udp": true, "tcp": true, "tls": true},
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()][l.GetValue()] {
					t.Errorf("%s has label %s=%q; only method, state and transport, with their fixed values, are allowed", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, want := range []string{metricRegistrations, metricAuthFailures, metricContacts, metricContactRTT, metricTransports} {
		if !names[want] {
			t.Errorf("%s not registered", want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, metricRegistrations); err != nil || n != 1 {
		t.Errorf("%s count %d, %v", metricRegistrations, n, err)
	}
	if !strings.HasPrefix(metricAuthFailures, "parley_") {
		t.Error("prefix")
	}
}

func TestMethodLabelBounded(t *testing.T) {
	for m, want := range map[string]string{"REGISTER": "REGISTER", "INVITE": "INVITE", "BYE": "other", "XYZ": "other"} {
		if got := methodLabel(sip.RequestMethod(m)); got != want {
			t.Errorf("%s → %s, want %s", m, got, want)
		}
	}
}
