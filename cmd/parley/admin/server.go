package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shutdownTimeout is how long Serve lets requests in flight finish once
// its context ends.
const shutdownTimeout = 2 * time.Second

// Server serves the admin endpoints (see the package documentation) on one
// TCP listener. Build it with New and run it with Serve.
type Server struct {
	metrics *prometheus.Registry
	calls   CallTable
	regs    Registrations
	bans    Bans
	nodes   Nodes
	records Records
	rooms   Rooms
	trunks  Trunks // trunks.go
	state   *readiness
	token   bearer
	pprof   bool
	hosts   hostCheck
	handler http.Handler
	// api is the mux of the routes, without the access checks: the
	// dashboard's feed reads GET /api/rooms through it (events.go).
	api  http.Handler
	feed *feed
	// ln and srv are nil when the Server has no address.
	ln  net.Listener
	srv *http.Server
}

// New returns a Server that will answer on addr (host:port), listening
// already so that a busy port is an error here rather than in Serve. With
// an empty addr the Server does not listen: Serve only waits, and Handler
// still answers, to requests whose Host is a loopback name on any port.
// The Server reports not ready until SetReady, and refuses every request
// that changes state unless WithToken gave it a token.
func New(addr string, opts ...Option) (*Server, error) {
	s := &Server{calls: noCalls{}, regs: noRegistrations{}, bans: noBans{}, nodes: noNodes{}, state: newReadiness()}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	if s.metrics == nil {
		s.metrics = prometheus.NewRegistry()
	}
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		s.ln = ln
	}
	var bound net.Addr
	if s.ln != nil {
		bound = s.ln.Addr()
	}
	s.hosts = newHostCheck(addr, bound)
	s.feed = newFeed(s.dashboardState)
	s.api = s.routes()
	s.handler = s.checkAccess(s.api)
	if s.ln != nil {
		s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	}
	return s, nil
}

// routes builds the handler of every admin endpoint.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}))
	mux.HandleFunc("GET /healthz", serveHealthz)
	mux.HandleFunc("GET /readyz", s.state.serveReadyz)
	registerAPI(mux, s.calls, s.regs, s.bans, s.nodes)
	s.registerDashboard(mux)
	registerRecords(mux, s) // records.go: /api/cdr, /api/users/{user}/kick
	registerRooms(mux, s.rooms)
	registerTrunks(mux, s) // trunks.go: /api/trunks
	if !s.pprof {
		mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "profiling is off (admin.pprof: false)")
		})
		return mux
	}
	// Profiling, for finding what limits parley under load. Its heap and
	// goroutine dumps are for the operator only: it is off by default.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// Serve answers requests until ctx ends, then ends the dashboard's event
// streams, lets the requests in flight finish for up to two seconds and
// returns nil. It returns early with an error if the listener fails.
// Without an address it waits for ctx, ends the event streams of Handler
// and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	if s.srv == nil {
		<-ctx.Done()
		s.feed.close()
		return nil
	}
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	// Shutdown waits for handlers to return, and a stream returns only
	// when told: end the streams first.
	s.feed.close()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	if err == nil {
		err = <-served
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// Addr returns the address the Server listens on, with the port the system
// chose if addr asked for port 0, or "" if it has no address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Handler returns the handler of every admin endpoint, the one Serve
// answers with, for serving it elsewhere (as tests do).
func (s *Server) Handler() http.Handler { return s.handler }

// SetReady makes /readyz answer 200 (unless draining): the SIP listeners
// are bound. Calls after the first do nothing.
func (s *Server) SetReady() { s.state.setReady() }

// SetDraining makes /readyz answer 503 "draining" from now on, so load
// balancers stop sending calls before parley refuses them.
func (s *Server) SetDraining() { s.state.setDraining() }
