package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/registrar"
)

type configLog = config.Log

func defaultConfig() []byte { return config.DefaultYAML() }

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default()
	}
	return config.Load(path)
}

// serve wires the packages together and runs until ctx ends or a signal
// on sigs stops it (see stopper).
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer, sigs <-chan os.Signal) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if cfg.Store.Path != "" {
		if err := os.MkdirAll(cfg.Store.Path, 0o700); err != nil {
			return fmt.Errorf("store.path: %w", err)
		}
	}
	passwords, generated, err := registrar.Passwords(cfg.Store.Path, cfg.Users)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	digest, err := registrar.NewDigest(cfg.SIP.Realm, passwords, cfg.TrustedPrefixes(),
		registrar.WithAuthMetrics(reg), registrar.WithAlgorithms(cfg.SIP.AuthAlgorithms...))
	if err != nil {
		return err
	}
	var store registrar.Store
	if cfg.Store.Path == "" {
		store = registrar.NewMemoryStore()
	} else {
		store, err = registrar.OpenBoltStore(filepath.Join(cfg.Store.Path, "registrations.db"))
		if err != nil {
			return fmt.Errorf("store.path: %w", err)
		}
	}
	// The registrar pings contacts through the SIP server, which is built
	// after it (it needs the registrar as its locator).
	ping := &pinger{}
	regs, err := registrar.New(digest, store,
		registrar.WithExpires(cfg.Registrar.MinExpires, cfg.Registrar.MaxExpires),
		registrar.WithLogger(log.With("component", "registrar")),
		registrar.WithMetrics(reg),
		registrar.WithQualify(cfg.Registrar.Qualify, ping),
	)
	if err != nil {
		store.Close()
		return err
	}
	defer regs.Close()

	pool, err := media.NewPortPool(cfg.RTP.PortMin, cfg.RTP.PortMax)
	if err != nil {
		return fmt.Errorf("rtp: %w", err)
	}
	rtpAddr := netip.MustParseAddr(cfg.RTP.Address)
	relay, err := media.NewRelay(pool, rtpAddr,
		media.WithRelayTimeout(cfg.RTP.Timeout),
		media.WithRelayRegisterer(reg),
		media.WithRelayLogger(log.With("component", "relay")))
	if err != nil {
		return fmt.Errorf("rtp: %w", err)
	}
	sessions, err := media.NewRelaySessions(relay, rtpAddr, cfg.RTP.Codecs, media.WithSessionsLogger(log.With("component", "sdp")))
	if err != nil {
		return fmt.Errorf("rtp: %w", err)
	}
	opts := []dialog.Option{dialog.WithMedia(relayMedia{sessions})}
	if cfg.Services.Echo != "" {
		echo, err := media.NewEcho(pool, rtpAddr, cfg.RTP.Codecs,
			media.WithEchoTimeout(cfg.RTP.Timeout), media.WithEchoLogger(log.With("component", "echo")))
		if err != nil {
			return fmt.Errorf("services.echo: %w", err)
		}
		opts = append(opts, dialog.WithService(cfg.Services.Echo, echoService{echo}))
	}
	b2b, err := dialog.New(cfg, append(opts,
		dialog.WithLogger(log.With("component", "dialog")),
		dialog.WithRegisterer(reg),
		dialog.WithAuthenticator(authenticator{digest}),
		dialog.WithLocator(locator{regs}),
		dialog.WithQuickHandler(sip.REGISTER, regs.HandleRegister),
	)...)
	if err != nil {
		return err
	}
	ping.set(b2b)

	adm, err := admin.New(cfg.Admin.Listen, admin.WithMetrics(reg), admin.WithCalls(b2b), admin.WithRegistrations(regs))
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	stop := &stopper{srv: b2b, grace: cfg.Sessions.DrainGrace, log: log, onDrain: adm.SetDraining,
		poll: drainPoll, progress: drainProgress}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(5)
	go func() { defer wg.Done(); errs <- relay.Run(ctx) }()
	go func() { defer wg.Done(); errs <- regs.Run(ctx) }()
	go func() { defer wg.Done(); errs <- b2b.Serve(ctx) }()
	go func() { defer wg.Done(); errs <- adm.Serve(ctx) }()
	go func() { defer wg.Done(); stop.run(ctx, sigs, cancel) }()

	select {
	case <-b2b.Ready():
		adm.SetReady()
		printWelcome(out, cfg, b2b, passwords, generated)
		log.Info("parley ready", "admin", cfg.Admin.Listen)
	case <-ctx.Done():
	}
	var first error
	select {
	case first = <-errs:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if first == nil && err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	if errors.Is(first, context.Canceled) {
		first = nil
	}
	return first
}

// authenticator adapts the registrar's Digest to dialog.Authenticator.
type authenticator struct{ d *registrar.Digest }

func (a authenticator) Authenticate(req *sip.Request, code int) (string, *sip.Response, bool) {
	id, res, ok := a.d.Authenticate(req, code)
	return id.User, res, ok
}

func (a authenticator) IsUser(user string) bool { return a.d.IsUser(user) }

// echoService adapts media.Echo to dialog.Service.
type echoService struct{ e *media.Echo }

func (s echoService) Start(offer []byte) ([]byte, dialog.ServiceSession, error) {
	answer, sess, err := s.e.Start(offer)
	if err != nil {
		return nil, nil, err
	}
	return answer, sess, nil
}

// relayMedia adapts media.Sessions to dialog.Media.
type relayMedia struct{ s *media.Sessions }

func (m relayMedia) NewSession() (dialog.MediaSession, error) {
	sess, err := m.s.New()
	if err != nil {
		return nil, err
	}
	return mediaSession{sess}, nil
}

// mediaSession adapts media.Session to dialog.MediaSession.
type mediaSession struct{ s *media.Session }

func side(fromCaller bool) media.Side {
	if fromCaller {
		return media.SideA
	}
	return media.SideB
}

func (m mediaSession) Offer(fromCaller bool, sdp []byte) ([]byte, error) {
	return m.s.Offer(side(fromCaller), sdp)
}

func (m mediaSession) Answer(fromCaller bool, sdp []byte) ([]byte, error) {
	return m.s.Answer(side(fromCaller), sdp)
}

func (m mediaSession) OnHold() bool { return m.s.OnHold() }
func (m mediaSession) Current(toCaller bool) []byte {
	return m.s.Current(side(toCaller))
}
func (m mediaSession) Unchanged(fromCaller bool, sdp []byte) bool {
	return m.s.Unchanged(side(fromCaller), sdp)
}
func (m mediaSession) OnTimeout(f func()) { m.s.OnTimeout(f) }
func (m mediaSession) Close() error       { return m.s.Close() }

func (m mediaSession) Quality() dialog.MediaQuality {
	st := m.s.Stats()
	return dialog.MediaQuality{
		Codec:   m.s.Codec(),
		Packets: st.A.Packets + st.B.Packets,
		Lost:    st.A.Lost + st.B.Lost,
		Jitter:  max(st.A.Jitter, st.B.Jitter),
	}
}

// pinger adapts dialog.Server.Ping to registrar.Pinger.
type pinger struct {
	mu sync.Mutex
	s  *dialog.Server
}

func (p *pinger) set(s *dialog.Server) {
	p.mu.Lock()
	p.s = s
	p.mu.Unlock()
}

func (p *pinger) Ping(ctx context.Context, b registrar.Binding) (time.Duration, error) {
	p.mu.Lock()
	s := p.s
	p.mu.Unlock()
	if s == nil {
		return 0, errors.New("SIP server not ready")
	}
	return s.Ping(ctx, b.Contact, b.Source, b.Transport)
}

// locator adapts the registrar to dialog.Locator.
type locator struct{ r *registrar.Registrar }

func (l locator) Lookup(user string) []dialog.Contact {
	bs := l.r.Lookup(user)
	out := make([]dialog.Contact, 0, len(bs))
	for _, b := range bs {
		out = append(out, dialog.Contact{URI: b.Contact, Dest: b.Source, Transport: b.Transport})
	}
	return out
}

// printWelcome tells a newcomer how to point a softphone at parley.
func printWelcome(w io.Writer, cfg *config.Config, b2b *dialog.Server, pw map[string]string, generated []string) {
	addr := b2b.Addr("udp")
	if addr == "" {
		addr = b2b.Addr("tcp")
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = guessLANAddress()
	}
	if cfg.SIP.PublicAddress != "" {
		host = cfg.SIP.PublicAddress
	}
	fmt.Fprintf(w, "\nparley is running.\n\nTo register a softphone (Linphone, Zoiper, MicroSIP, baresip):\n")
	fmt.Fprintf(w, "  SIP server / proxy: %s:%s (UDP or TCP)\n  domain / realm:     %s\n", host, port, cfg.SIP.Realm)
	users := make([]string, 0, len(pw))
	for u := range pw {
		users = append(users, u)
	}
	sort.Strings(users)
	gen := map[string]bool{}
	for _, g := range generated {
		gen[g] = true
	}
	for _, u := range users {
		note := ""
		if gen[u] {
			note = "  (generated"
			if cfg.Store.Path != "" {
				note += ", kept in " + filepath.Join(cfg.Store.Path, "passwords.yaml")
			}
			note += ")"
		}
		fmt.Fprintf(w, "  user %-8s password %s%s\n", u, pw[u], note)
	}
	if cfg.Services.Echo != "" {
		fmt.Fprintf(w, "\nDial %s for the echo service.\n", cfg.Services.Echo)
	}
	if ip := net.ParseIP(cfg.RTP.Address); ip != nil && ip.IsLoopback() && !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(w, "\nNote: rtp.address is %s, so only phones on this host get audio.\n"+
			"For phones on your network, set rtp.address to this host's address (e.g. %s) in a config file.\n", cfg.RTP.Address, host)
	}
	if cfg.Admin.Listen != "" {
		fmt.Fprintf(w, "Metrics and health: http://%s/metrics  /healthz  /readyz\n", cfg.Admin.Listen)
		fmt.Fprintf(w, "Calls and registrations: parley calls, parley registrations (http://%s/api/)\n", cfg.Admin.Listen)
	}
	fmt.Fprintln(w)
}

func guessLANAddress() string {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
