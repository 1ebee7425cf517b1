package dialog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transaction"
	"github.com/parley-sip/parley/dialog/transport"
)

// Authenticator checks a request's digest credentials. cmd/parley plugs in
// the registrar's implementation.
type Authenticator interface {
	// Authenticate checks the Authorization (code 401) or
	// Proxy-Authorization (code 407) header of req. When ok is false, res is
	// the challenge or refusal to send.
	Authenticate(req *sip.Request, code int) (user string, res *sip.Response, ok bool)
	// Precheck says, without state, whether req can carry valid
	// credentials at all; when not, res is the challenge to send, with no
	// transaction (see Server.stateless).
	Precheck(req *sip.Request, code int) (res *sip.Response, ok bool)
	// IsUser reports whether user is a local account.
	IsUser(user string) bool
}

// Contact is one place a registered user can be reached.
type Contact struct {
	// URI is the Contact URI the phone registered; it becomes the
	// Request-URI.
	URI string
	// Dest is the "ip:port" the phone registered from (RFC 3581), where
	// requests are sent so they reach it behind NAT.
	Dest string
	// Transport is "udp", "tcp" or "tls".
	Transport string
	// Node is the cluster node that holds the phone's flow (the one its
	// REGISTER came through), and NodeAddr that node's SIP address; empty
	// when it is this node or there is no cluster. A call for a phone
	// behind another node goes through that node, the only one its NAT
	// lets in.
	Node, NodeAddr string
}

// Locator finds where a local user is registered.
type Locator interface {
	Lookup(user string) []Contact
}

// Option configures a Server.
type Option func(*Server) error

// WithLogger sets the logger; sipgo's logs go to it too.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) error { s.log = l; return nil }
}

// WithRegisterer registers the Server's metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Server) error { s.reg = reg; return nil }
}

// WithAuthenticator sets who checks credentials. Without one, every request
// is accepted (for tests).
func WithAuthenticator(a Authenticator) Option {
	return func(s *Server) error { s.auth = a; return nil }
}

// WithLocator sets where registered users are looked up.
func WithLocator(l Locator) Option {
	return func(s *Server) error { s.loc = l; return nil }
}

// WithHandler serves method with h, for requests outside any dialog (for
// example REGISTER, served by the registrar).
func WithHandler(method sip.RequestMethod, h sipgo.RequestHandler) Option {
	return func(s *Server) error { s.extra[method] = h; return nil }
}

// WithQuickHandler is WithHandler for a handler that never waits: no
// network, no lock held for long, no channel it could block on. On UDP it
// runs on the goroutine that parsed the request, which saves handing every
// request to a worker; a handler that blocked would stall every request
// parsed there.
func WithQuickHandler(method sip.RequestMethod, h sipgo.RequestHandler) Option {
	return func(s *Server) error {
		s.extra[method] = h
		s.quick[method] = true
		return nil
	}
}

// WithStateObserver makes f hear of every move of every call's state, in
// the call's own order (it runs in the call's queue, so it must be quick
// and must not call back into the Server). Tests and call records use it.
func WithStateObserver(f func(call string, from, to State)) Option {
	return func(s *Server) error { s.onState = f; return nil }
}

// WithRingTimeout sets how long a call may ring before parley gives up with
// 408 (RFC 3261 Timer C is its upper bound).
func WithRingTimeout(d time.Duration) Option {
	return func(s *Server) error {
		if d <= 0 {
			return errors.New("ring timeout must be positive")
		}
		s.ringTimeout = d
		return nil
	}
}

type route struct {
	re     *regexp.Regexp
	target string
	trunk  string // routes[].trunk (trunk.go)
}

// Server is parley's SIP front: listeners, request handlers and the B2BUA.
type Server struct {
	cfg         *config.Config
	log         *slog.Logger
	reg         prometheus.Registerer
	auth        Authenticator
	loc         Locator
	extra       map[sip.RequestMethod]sipgo.RequestHandler
	quick       map[sip.RequestMethod]bool // handlers run where parsed
	services    map[string]Service
	media       Media
	ringTimeout time.Duration
	onState     func(call string, from, to State)
	guard       Guard
	// capture sees every SIP message (capture.hep; nil: none), tap.go.
	capture Capture
	// ckpt writes the calls' checkpoints (nil: none); node names this
	// process in them.
	ckpt      *ckWriter
	node      string
	recovered *prometheus.CounterVec
	// detached is set by Detach: the calls are left to the next process.
	detached atomic.Bool

	// record hears of every ended call (WithRecorder; nil: none).
	record func(CallRecord)
	// trunks are the upstream providers (WithTrunks; nil: none), trunk.go.
	trunks Trunks

	// dns resolves route targets' host names (dns.go).
	dns Resolver

	// certs is what the tls:// listeners present (tls.go; nil: none).
	certs *transport.Certificates

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	m      *metrics
	calls  *table
	routes []route
	// watch holds the subscriptions to users' state (presence.go).
	watch *notifier

	listeners []*transport.Listener
	advertise *transport.Advertiser
	ready     chan struct{}
	draining  atomic.Bool

	// wg counts goroutines the Server starts outside sipgo's own handlers
	// (second-leg transactions, BYEs); Serve waits for them.
	wg sync.WaitGroup
	// work runs the handlers and those goroutines (see workers).
	work *workers
	// parser reads every message; tx is the transaction layer of the UDP
	// listeners, handlers the handler per method.
	parser   *sip.Parser
	tx       *transaction.Layer
	handlers map[sip.RequestMethod]sipgo.RequestHandler
	// base is the context calls derive from; it ends when Serve returns.
	baseMu sync.Mutex
	base   context.Context
}

// New builds a Server for cfg. It binds nothing until Serve.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	s := &Server{
		cfg:         cfg,
		log:         slog.Default(),
		extra:       map[sip.RequestMethod]sipgo.RequestHandler{},
		quick:       map[sip.RequestMethod]bool{},
		services:    map[string]Service{},
		ringTimeout: 120 * time.Second,
		calls:       newTable(),
		watch:       newNotifier(),
		work:        newWorkers(workerIdle),
		ready:       make(chan struct{}),
		base:        context.Background(),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.dns == nil {
		if err := s.defaultResolver(); err != nil {
			return nil, fmt.Errorf("sip.dns: %w", err)
		}
	}
	for i, r := range cfg.Routes {
		re, err := regexp.Compile(r.Match)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].match: %w", i, err)
		}
		s.routes = append(s.routes, route{re: re, target: r.Target, trunk: r.Trunk})
	}
	if err := s.loadCertificates(); err != nil {
		return nil, err
	}
	s.m = newMetrics(s.reg)
	s.recovered = newRecoverMetrics(s.reg)
	if s.ckpt != nil {
		s.ckpt.register(s.reg)
	}

	sipLog := s.log.With("component", "sipgo")
	s.parser = transport.NewLenientParser()
	if m := cfg.SIP.MaxMessageSize; m > 0 {
		// The transport holds messages to sip.max_message_size exactly
		// (per datagram on UDP, as it frames the stream on TCP). sipgo's
		// parser, whose count also takes in the CRLF keepalives before a
		// message, gets room above it so that it never refuses first.
		s.parser.MaxMessageLength = m + 1024
	}
	s.advertise = transport.NewAdvertiser(cfg.SIP.PublicAddress)
	s.tx = transaction.New(txHandler{s},
		transaction.WithLogger(s.log),
		transaction.WithRunner(s.work.Go),
		transaction.WithResponseObserver(s.m.response),
		transaction.WithStateless(s.stateless))
	if s.reg != nil {
		// parley's own transactions (UDP), finished ones included while
		// they absorb retransmissions.
		for side, n := range map[string]func() int{"server": s.tx.ServerLen, "client": s.tx.ClientLen} {
			s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "parley_sip_transactions",
				Help:        "SIP transactions parley holds over UDP, finished ones included while they absorb retransmissions.",
				ConstLabels: prometheus.Labels{"side": side},
			}, func() float64 { return float64(n()) }))
		}
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("parley"),
		sipgo.WithUserAgentHostname(cfg.SIP.Realm),
		sipgo.WithUserAgentParser(s.parser),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(s.onStrayResponse),
		),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(sipLog),
		),
	)
	if err != nil {
		return nil, err
	}
	s.ua = ua
	s.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		return nil, err
	}
	s.client, err = sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog), sipgo.WithClientHostname(cfg.SIP.Realm))
	if err != nil {
		return nil, err
	}
	s.routeHandlers()
	return s, nil
}

// Ready is closed once every listener is bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Drain makes the Server refuse new calls with 503 from now on.
func (s *Server) Drain() { s.draining.Store(true) }

// ActiveCalls returns the number of calls in progress.
func (s *Server) ActiveCalls() int { return s.calls.len() }

// Calls returns a snapshot of every call in progress.
func (s *Server) Calls() []Snapshot {
	calls := s.calls.all()
	out := make([]Snapshot, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.Snapshot())
	}
	return out
}

// Addr returns the bound address of the first listener of network ("udp",
// "tcp" or "tls"), or "" if there is none. Useful when a port was given as 0.
func (s *Server) Addr(network string) string {
	for _, l := range s.listeners {
		if l.Network == network {
			return l.Addr()
		}
	}
	return ""
}

// Serve binds every configured listener, serves until ctx ends, then hangs
// up every call, closes the listeners and waits for its goroutines. A
// listener that cannot go on (its socket broken; a failing accept is
// retried, see transport.GuardedListener) stops the Server as well, and
// Serve returns that listener's error.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.baseMu.Lock()
	s.base = ctx
	s.baseMu.Unlock()

	for _, l := range s.cfg.Listeners() {
		ln, err := transport.Bind(l)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.listeners = append(s.listeners, ln)
	}

	var serving sync.WaitGroup
	stopCapture := s.runCapture(&serving)
	// failed keeps the first listener that could not go on; Serve then
	// stops and returns it, so parley exits non-zero.
	var failMu sync.Mutex
	var failed error
	limits := s.tcpLimits()
	for _, ln := range s.listeners {
		var port *transport.UDPPort
		var guarded *transport.GuardedListener
		if ln.UDP != nil {
			port = transport.NewUDPPort(ln.UDP, s.parser, txSink{s.tx}, s.log,
				append(s.udpTapOptions(), transport.WithMaxMessageSize(s.cfg.SIP.MaxMessageSize))...)
			ln.Port = port
			serving.Add(1)
			go func() {
				defer serving.Done()
				port.Serve()
			}()
		} else {
			guarded = ln.Guard(limits, s.log.With("component", ln.Network), append(s.tcpTapOptions(), s.tlsOptions(ln)...)...)
		}
		serving.Add(1)
		go func() {
			defer serving.Done()
			var err error
			if port != nil {
				err = s.srv.ServeUDP(port)
			} else {
				err = s.serveStream(ln, guarded) // TCP or TLS
			}
			if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("SIP listener stopped", "network", ln.Network, "addr", ln.Addr(), "error", err)
				failMu.Lock()
				if failed == nil {
					failed = fmt.Errorf("SIP listener %s://%s stopped: %w", ln.Network, ln.Addr(), err)
				}
				failMu.Unlock()
				cancel()
			}
		}()
		s.log.Info("SIP listening", "network", ln.Network, "addr", ln.Addr())
	}
	s.recoverCalls()
	ckDone := make(chan struct{})
	if s.ckpt != nil {
		serving.Add(1)
		go func() {
			defer serving.Done()
			s.runCheckpoints(ckDone)
		}()
	}
	close(s.ready)
	stopTrunks := s.runTrunks() // trunk.go
	go s.work.janitor(ctx.Done())
	serving.Add(1)
	go func() {
		defer serving.Done()
		s.tx.Run(ctx.Done())
	}()

	<-ctx.Done()
	stopTrunks() // unregisters while the listeners are still open
	s.HangupAll("shutdown")
	s.wg.Wait()
	close(ckDone)
	s.closeListeners()
	stopCapture()
	serving.Wait()
	err := s.ua.Close()
	s.work.Close()
	s.work.Wait()
	if failed != nil {
		return failed
	}
	return err
}

// tcpLimits are the bounds of sip.tcp and sip.max_message_size on every
// connection the TCP and TLS listeners accept.
func (s *Server) tcpLimits() transport.TCPLimits {
	t := s.cfg.SIP.TCP
	return transport.TCPLimits{
		MaxConnections:      t.MaxConnections,
		MaxPerSource:        t.MaxPerSource,
		IdleTimeout:         t.IdleTimeout,
		FirstMessageTimeout: t.FirstMessageTimeout,
		MaxMessageSize:      s.cfg.SIP.MaxMessageSize,
	}
}

// workerIdle is how long a worker goroutine waits for a job before it ends.
const workerIdle = 10 * time.Second

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
}

// listenerFor returns the listener to send over for network.
//
// With dest ("ip:port", or "" when unknown) it prefers a listener of the
// destination's IP family, so that an IPv6 phone is sent to from the IPv6
// socket and announced an IPv6 Via and Contact; a listener bound to every
// address of its family (0.0.0.0 or ::) serves that family.
func (s *Server) listenerFor(network, dest string) *transport.Listener {
	var first *transport.Listener
	want6, known := destIs6(dest)
	for _, l := range s.listeners {
		if l.Network != network {
			continue
		}
		if first == nil {
			first = l
		}
		if !known {
			return l
		}
		if ip := l.IP(); ip != nil && (ip.To4() == nil) == want6 {
			return l
		}
	}
	return first
}

// destIs6 reports whether dest, "ip:port", is an IPv6 address; known is
// false when dest names no IP address.
func destIs6(dest string) (is6, known bool) {
	ap, err := netip.ParseAddrPort(dest)
	if err != nil {
		return false, false
	}
	a := ap.Addr()
	return a.Is6() && !a.Is4In6(), true
}

func (s *Server) onStrayResponse(res *sip.Response) {
	// Retransmitted final responses of finished client transactions end
	// up here; they need nothing more.
	s.log.Debug("stray response", "status", res.StatusCode, "call_id", sipmsg.CallID(res))
}

// context returns the context calls derive from.
func (s *Server) context() context.Context {
	s.baseMu.Lock()
	defer s.baseMu.Unlock()
	return s.base
}

// goOwned runs f on a worker; Serve waits for it.
func (s *Server) goOwned(f func()) {
	s.wg.Add(1)
	s.work.Go(func() {
		defer s.wg.Done()
		f()
	})
}
