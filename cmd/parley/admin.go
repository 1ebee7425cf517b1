package main

import (
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readiness is what /readyz reports: not ready until the SIP listeners are
// bound, then ready, then draining once SIGTERM starts a drain, so load
// balancers stop sending calls before parley refuses them.
type readiness struct {
	ready    chan struct{}
	once     sync.Once
	draining atomic.Bool
}

func newReadiness() *readiness { return &readiness{ready: make(chan struct{})} }

// setReady marks the SIP listeners as bound.
func (r *readiness) setReady() { r.once.Do(func() { close(r.ready) }) }

// setDraining marks parley as refusing new calls.
func (r *readiness) setDraining() { r.draining.Store(true) }

// adminMux routes the admin endpoints.
func adminMux(reg *prometheus.Registry, state *readiness, calls callTable, regs registrations) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-state.ready:
		default:
			http.Error(w, "not ready: SIP listeners not bound yet", http.StatusServiceUnavailable)
			return
		}
		if state.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	registerAPI(mux, calls, regs)
	// Profiling, for finding what limits parley under load; the admin
	// listener is on loopback by default.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
