// Package guard is parley's doorman against hostile sources: it bans a
// source address that guesses passwords or leaves its challenges
// unanswered, limits the requests a stranger may send without valid
// credentials, and recognises scanners by their User-Agent. It is
// Kamailio's pike and htable, or fail2ban's jail, inside parley.
//
// It keeps a small record per source address, bounded in number, and
// knows nothing of SIP beyond that: the registrar's digest tells it how
// each source fares (Challenged, Failed, Succeeded: registrar.AuthObserver),
// and the B2BUA asks it before it takes a request (Allow, Scanner,
// Stranger). Trusted networks (sip.trusted) are never banned, limited or
// dropped.
//
// With a BanStore (WithBanStore) the nodes of a cluster share their bans:
// each node publishes the bans it imposes and the ones an operator lifts,
// and applies those the others publish.
package guard

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/config"
)

// defaultMaxSources bounds the sources the guard keeps a record of. Past
// it a new source is not recorded (it cannot be banned until old records
// expire), so a flood from spoofed addresses costs a bounded amount of
// memory (about 100 bytes a source).
const defaultMaxSources = 1 << 16

// answerGrace is how long a challenge may be on its way without counting
// as unanswered: a load test from one address sends hundreds of
// challenged requests before its first answer arrives.
const answerGrace = 2 * time.Second

// Ban is one banned source.
type Ban struct {
	Address string    `json:"address"`
	Until   time.Time `json:"until"`
	Reason  string    `json:"reason"`
}

// source is what the guard knows of one address, for the current window.
type source struct {
	windowStart time.Time
	failures    int // wrong digests, unknown users, replays
	unanswered  int // challenges not (yet) answered correctly
	// firstUnanswered is when the oldest of them went out.
	firstUnanswered time.Time
	lastOK          time.Time
	tokens          float64
	refilled        time.Time
}

// Guard keeps the bans and the per-source counts. It is safe for
// concurrent use.
type Guard struct {
	cfg     config.Security
	trusted []netip.Prefix
	agents  []string // lower case
	log     *slog.Logger
	now     func() time.Time

	maxSources int

	mu      sync.Mutex
	sources map[netip.Addr]*source
	bans    map[netip.Addr]Ban

	// store shares the bans with other nodes (nil: not shared); outbox
	// holds what Run is to publish there.
	store  BanStore
	outbox chan banChange

	bansGauge prometheus.GaugeFunc
	dropped   *prometheus.CounterVec
	banned    prometheus.Counter
	shared    prometheus.Counter
	unshared  prometheus.Counter
}

// Option configures a Guard.
type Option func(*Guard)

// WithLogger sets the logger bans are logged to.
func WithLogger(l *slog.Logger) Option { return func(g *Guard) { g.log = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(g *Guard) { g.now = now } }

// WithRegisterer registers the guard's metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(g *Guard) {
		reg.MustRegister(g.bansGauge, g.dropped, g.banned, g.shared, g.unshared)
	}
}

// New returns a Guard for the security settings; trusted networks are
// exempt from everything.
func New(cfg config.Security, trusted []netip.Prefix, opts ...Option) *Guard {
	g := &Guard{
		cfg:     cfg,
		trusted: slices.Clone(trusted),
		log:     slog.New(slog.DiscardHandler),
		now:     time.Now,
		sources: map[netip.Addr]*source{},

		maxSources: defaultMaxSources,
		bans:       map[netip.Addr]Ban{},
	}
	for _, a := range cfg.DropUserAgents {
		g.agents = append(g.agents, strings.ToLower(a))
	}
	g.bansGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_security_bans",
		Help: "Source addresses banned now.",
	}, func() float64 {
		g.mu.Lock()
		defer g.mu.Unlock()
		return float64(len(g.bans))
	})
	g.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_security_dropped_total",
		Help: "Requests dropped silently, by reason: banned, scanner, rate.",
	}, []string{"reason"})
	for _, r := range []string{"banned", "scanner", "rate"} {
		g.dropped.WithLabelValues(r)
	}
	g.banned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_security_bans_total",
		Help: "Bans this node imposed.",
	})
	g.shared = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_security_shared_bans_total",
		Help: "Bans applied from the ban store: imposed by another node, or by this one before it restarted.",
	})
	g.unshared = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_security_ban_shares_dropped_total",
		Help: "Bans and lifts not told to the other nodes because the queue to the ban store was full.",
	})
	for _, o := range opts {
		o(g)
	}
	return g
}

// trustedAddr reports whether a lies in a trusted network.
func (g *Guard) trustedAddr(a netip.Addr) bool {
	for _, p := range g.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Allow reports whether a request from src may be taken at all: false
// while src is banned.
func (g *Guard) Allow(src netip.Addr) bool {
	src = src.Unmap()
	g.mu.Lock()
	ban, ok := g.bans[src]
	if ok && !g.now().Before(ban.Until) {
		delete(g.bans, src)
		ok = false
	}
	g.mu.Unlock()
	if ok {
		g.dropped.WithLabelValues("banned").Inc()
	}
	return !ok
}

// Scanner reports whether a request from src with User-Agent ua comes
// from a known scanner (security.drop_user_agents), to be dropped.
func (g *Guard) Scanner(src netip.Addr, ua string) bool {
	if ua == "" || len(g.agents) == 0 || g.trustedAddr(src.Unmap()) {
		return false
	}
	ua = strings.ToLower(ua)
	for _, a := range g.agents {
		if strings.Contains(ua, a) {
			g.dropped.WithLabelValues("scanner").Inc()
			return true
		}
	}
	return false
}

// Stranger takes one request from src that carries no valid credentials
// and reports whether it may be answered: false when src has used up its
// token bucket (security.rate, security.burst; no limit when rate is 0).
func (g *Guard) Stranger(src netip.Addr) bool {
	if g.cfg.Rate <= 0 {
		return true
	}
	src = src.Unmap()
	if g.trustedAddr(src) {
		return true
	}
	now := g.now()
	g.mu.Lock()
	s := g.record(src, now)
	ok := true
	if s != nil {
		s.tokens = min(float64(g.cfg.Burst), s.tokens+now.Sub(s.refilled).Seconds()*g.cfg.Rate)
		s.refilled = now
		if s.tokens >= 1 {
			s.tokens--
		} else {
			ok = false
		}
	}
	g.mu.Unlock()
	if !ok {
		g.dropped.WithLabelValues("rate").Inc()
	}
	return ok
}

// record returns src's record for the current window, made if needed; nil
// when the table is full. Call with g.mu held.
func (g *Guard) record(src netip.Addr, now time.Time) *source {
	s := g.sources[src]
	if s == nil {
		if len(g.sources) >= g.maxSources {
			g.sweepLocked(now)
			if len(g.sources) >= g.maxSources {
				return nil
			}
		}
		s = &source{windowStart: now, tokens: float64(g.cfg.Burst), refilled: now}
		g.sources[src] = s
	}
	if now.Sub(s.windowStart) > g.cfg.BanWindow {
		s.windowStart, s.failures, s.unanswered, s.firstUnanswered = now, 0, 0, time.Time{}
	}
	return s
}

// Challenged is told that src was sent a challenge.
func (g *Guard) Challenged(src netip.Addr) {
	g.count(src, func(s *source, now time.Time) string {
		s.unanswered++
		if s.firstUnanswered.IsZero() {
			s.firstUnanswered = now
		}
		// Banned when ban_after challenges are out, the oldest has had
		// answerGrace to be answered, and none was answered in the window.
		if g.cfg.BanAfter > 0 && s.unanswered >= g.cfg.BanAfter &&
			now.Sub(s.firstUnanswered) >= answerGrace && now.Sub(s.lastOK) > g.cfg.BanWindow {
			return "challenges unanswered"
		}
		return ""
	})
}

// Failed is told that src answered a challenge wrongly (user is who it
// claimed to be).
func (g *Guard) Failed(src netip.Addr, user string) {
	g.count(src, func(s *source, _ time.Time) string {
		s.failures++
		if s.unanswered > 0 {
			s.unanswered--
		}
		if g.cfg.BanAfter > 0 && s.failures >= g.cfg.BanAfter {
			return "authentication failures"
		}
		return ""
	})
}

// Succeeded is told that src answered a challenge correctly: a source
// whose challenges come back with valid credentials (a phone, a SIPp load
// test) is never banned for the challenges it has not answered yet.
func (g *Guard) Succeeded(src netip.Addr) {
	g.count(src, func(s *source, now time.Time) string {
		s.lastOK = now
		s.unanswered, s.firstUnanswered = 0, time.Time{}
		return ""
	})
}

// count runs f on src's record and bans src when f names a reason.
func (g *Guard) count(src netip.Addr, f func(*source, time.Time) string) {
	src = src.Unmap()
	if !src.IsValid() || g.trustedAddr(src) {
		return
	}
	now := g.now()
	g.mu.Lock()
	s := g.record(src, now)
	if s == nil {
		g.mu.Unlock()
		return
	}
	reason := f(s, now)
	var ban Ban
	if reason != "" {
		if _, already := g.bans[src]; !already {
			ban = Ban{Address: src.String(), Until: now.Add(g.cfg.BanTime), Reason: reason}
			g.bans[src] = ban
		}
		delete(g.sources, src)
	}
	g.mu.Unlock()
	if ban.Address != "" {
		g.banned.Inc()
		g.log.Warn("source banned", "source_ip", ban.Address, "reason", reason, "until", ban.Until.Format(time.RFC3339))
		g.share(banChange{addr: src, until: ban.Until, reason: reason})
	}
}

// Bans returns the bans in force, oldest expiry first.
func (g *Guard) Bans() []Ban {
	now := g.now()
	g.mu.Lock()
	out := make([]Ban, 0, len(g.bans))
	for a, b := range g.bans {
		if now.Before(b.Until) {
			out = append(out, b)
		} else {
			delete(g.bans, a)
		}
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Ban) int { return a.Until.Compare(b.Until) })
	return out
}

// Unban lifts the ban on addr, reporting whether there was one here.
// With a BanStore the lift is published whether or not there was, so it
// reaches a node that holds a ban this one never learnt of.
func (g *Guard) Unban(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	g.mu.Lock()
	_, ok := g.bans[a]
	delete(g.bans, a)
	delete(g.sources, a)
	g.mu.Unlock()
	if ok {
		g.log.Info("source unbanned", "source_ip", a.String())
	}
	g.share(banChange{addr: a})
	return ok
}

// Run sweeps expired bans and records every ban_window until ctx ends.
// With a BanStore it also publishes the guard's bans and lifts, one at a
// time, and watches for the other nodes'; it returns once the watch has
// stopped.
func (g *Guard) Run(ctx context.Context) error {
	if g.store != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { g.watch(ctx) })
	}
	every := max(g.cfg.BanWindow, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-g.outbox: // nil, and never ready, without a store
			g.publish(ctx, c)
		case <-t.C:
			g.mu.Lock()
			g.sweepLocked(g.now())
			g.mu.Unlock()
		}
	}
}

// sweepLocked drops expired bans and records whose window has passed and
// that hold no bucket debt. Call with g.mu held.
func (g *Guard) sweepLocked(now time.Time) {
	for a, b := range g.bans {
		if !now.Before(b.Until) {
			delete(g.bans, a)
		}
	}
	for a, s := range g.sources {
		if now.Sub(s.windowStart) > g.cfg.BanWindow && now.Sub(s.refilled) > g.cfg.BanWindow {
			delete(g.sources, a)
		}
	}
}
