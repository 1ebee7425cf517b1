package admin

import (
	"net/http"
	"sync"
	"sync/atomic"
)

// readiness is what /readyz reports: not ready until the SIP listeners are
// bound, then ready, then draining once SIGTERM starts a drain, so load
// balancers stop sending calls before parley refuses them.
type readiness struct {
	ready    chan struct{}
	once     sync.Once
	draining atomic.Bool
	// checks must all pass for ready (see WithReadyCheck).
	checks []readyCheck
}

type readyCheck struct {
	name  string
	check func() error
}

func newReadiness() *readiness { return &readiness{ready: make(chan struct{})} }

// setReady marks the SIP listeners as bound.
func (r *readiness) setReady() { r.once.Do(func() { close(r.ready) }) }

// setDraining marks parley as refusing new calls.
func (r *readiness) setDraining() { r.draining.Store(true) }

// serveReadyz answers GET /readyz.
func (r *readiness) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-r.ready:
	default:
		http.Error(w, "not ready: SIP listeners not bound yet", http.StatusServiceUnavailable)
		return
	}
	if r.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	for _, c := range r.checks {
		if err := c.check(); err != nil {
			http.Error(w, "not ready: "+c.name+": "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

// serveHealthz answers GET /healthz: the process is up.
func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	_, _ = w.Write([]byte("ok\n"))
}
