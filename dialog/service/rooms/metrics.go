package rooms

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the rooms' Prometheus metrics. The gauges are read from the
// directory when scraped; the counters count floor changes.
type metrics struct {
	dir      *Directory
	rooms    *prometheus.Desc
	members  *prometheus.Desc
	grants   *prometheus.CounterVec
	releases *prometheus.CounterVec
}

func newMetrics(dir *Directory) *metrics {
	return &metrics{
		dir: dir,
		rooms: prometheus.NewDesc("parley_rooms",
			"Rooms with at least one member, by mode (conference, ptt).", []string{"mode"}, nil),
		members: prometheus.NewDesc("parley_room_members",
			"Members in each room.", []string{"room"}, nil),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_room_floor_grants_total",
			Help: "Push-to-talk floor grants, by room.",
		}, []string{"room"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_room_floor_releases_total",
			Help: "Push-to-talk floor releases, by room and reason (released, hangup, silence, max_talk).",
		}, []string{"room", "reason"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m, m.grants, m.releases} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) grant(number string)           { m.grants.WithLabelValues(number).Inc() }
func (m *metrics) release(number, reason string) { m.releases.WithLabelValues(number, reason).Inc() }

// Describe implements prometheus.Collector for the gauges.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.rooms
	ch <- m.members
}

// Collect implements prometheus.Collector for the gauges.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	active := map[string]int{"conference": 0, "ptt": 0}
	for _, info := range m.dir.Rooms() {
		n := len(info.Members)
		ch <- prometheus.MustNewConstMetric(m.members, prometheus.GaugeValue, float64(n), info.Number)
		if n > 0 {
			active[info.Mode]++
		}
	}
	for mode, n := range active {
		ch <- prometheus.MustNewConstMetric(m.rooms, prometheus.GaugeValue, float64(n), mode)
	}
}
