package trunk

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/parley-sip/parley/config"
)

// TestMetrics: the trunks' metrics follow Prometheus naming, and each
// configured trunk shows as not registered before its first attempt.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New([]config.Trunk{trunkConfig(60, 0)}, WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	s.m.failure("prov")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	if v := testutil.ToFloat64(s.m.registered.WithLabelValues("prov")); v != 0 {
		t.Errorf("parley_trunk_registered{trunk=prov} = %v before any attempt, want 0", v)
	}
	if _, err := New(nil, WithRegisterer(reg)); err == nil {
		t.Error("the metrics registered twice on one registry without an error")
	}
}
