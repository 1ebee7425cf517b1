package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/guard"
	"github.com/parley-sip/parley/dialog/resolve"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/dialog/store"
	"github.com/parley-sip/parley/dialog/transport"
	"github.com/parley-sip/parley/dialog/trunk"
	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/registrar"
)

// serve wires the packages together and runs until ctx ends or a signal
// on sigs stops it (see stopper).
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer, sigs <-chan os.Signal) error {
	p := &parts{metrics: newMetrics(), ping: &pinger{}}
	defer p.close()
	if err := p.buildCheckpoints(cfg, log); err != nil {
		return err
	}
	if err := p.buildRegistrar(cfg, log); err != nil {
		return err
	}
	defer p.regs.Close()
	mediaOpts, err := p.buildMedia(cfg, log)
	if err != nil {
		return err
	}
	tlsOpts, err := p.buildTLS(cfg) // tls.go; before records, whose SIGHUP reloads it
	if err != nil {
		return err
	}
	mediaOpts = append(mediaOpts, tlsOpts...)
	recordOpts, err := p.buildRecords(cfg, log) // records.go
	if err != nil {
		return err
	}
	mediaOpts = append(mediaOpts, recordOpts...)
	if err := p.buildSIP(cfg, log, mediaOpts); err != nil {
		return err
	}
	if err := p.buildAdmin(cfg); err != nil {
		return err
	}
	stop := &stopper{srv: p.b2b, grace: cfg.Sessions.DrainGrace, log: log, onDrain: p.admin.SetDraining,
		poll: drainPoll, progress: drainProgress}
	return p.run(ctx, stop, sigs, func() {
		p.admin.SetReady()
		printWelcome(out, cfg, p.b2b, p.cred)
		if cfg.Admin.Listen == "" {
			log.Info("parley ready", "admin", "")
			return
		}
		log.Info("parley ready", "admin", cfg.Admin.Listen, "admin_token", p.cred.token.where())
	})
}

// parts are what serve builds, in the order it builds them.
type parts struct {
	// dns resolves host names (sip.dns): route targets, and whatever else
	// needs a name looked up the RFC 3263 way.
	dns *resolve.Resolver

	metrics *prometheus.Registry
	// cred are the users' passwords and the admin token, for the digest,
	// the admin server and printWelcome.
	cred   credentials
	digest *registrar.Digest
	// ping lets the registrar ping contacts through the SIP server, which
	// is built after it (it needs the registrar as its locator).
	ping  *pinger
	regs  *registrar.Registrar
	relay *media.Relay
	// guard bans and limits hostile sources; the digest reports to it and
	// the B2BUA asks it.
	guard *guard.Guard
	b2b   *dialog.Server
	admin *admin.Server
	// ckpt keeps the calls' checkpoints (nil with sessions.checkpoint
	// off or no store); closed when serve returns.
	ckpt   dialog.Checkpoints
	closer []func() error
	// redis is the store.redis client, nil without one; rs the cluster's
	// store on it, and cluster this node's part of the cluster.
	redis   *redis.Client
	rs      *store.Redis
	cluster *clusterNode
	// ready are what /readyz checks beyond the listeners.
	ready []readyCheck
	// records are the call records (records.go), nil when off.
	records *records
	// certs is the tls:// listeners' certificate (tls.go), nil without one.
	certs *transport.Certificates
	// published is what services offer the admin API (publishedOptions).
	published []any
	// trunks are the upstream providers (trunks.go).
	trunks *trunk.Set
}

// close closes what the parts opened, last first.
func (p *parts) close() {
	for i := len(p.closer) - 1; i >= 0; i-- {
		_ = p.closer[i]()
	}
}

// newMetrics returns the registry every package registers its metrics on,
// with Go's runtime and process collectors.
func newMetrics() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// buildRegistrar builds the digest authenticator and the registrar over
// the configured store.
func (p *parts) buildRegistrar(cfg *config.Config, log *slog.Logger) error {
	if err := p.buildDigest(cfg, log); err != nil {
		return err
	}
	store, err := p.openStore(cfg, log)
	if err != nil {
		return err
	}
	opts := []registrar.Option{
		registrar.WithExpires(cfg.Registrar.MinExpires, cfg.Registrar.MaxExpires),
		registrar.WithLogger(log.With("component", "registrar")),
		registrar.WithMetrics(p.metrics),
		registrar.WithQualify(cfg.Registrar.Qualify, p.ping),
		registrar.WithMaxContacts(cfg.Registrar.MaxContacts),
		registrar.WithBindingObserver(p.ping.BindingsChanged),
	}
	if p.redis != nil {
		// In a cluster each binding names the node holding its flow.
		opts = append(opts, registrar.WithNode(nodeID(cfg)), registrar.WithNodeAddr(nodeSIPAddr(cfg)))
	}
	p.regs, err = registrar.New(p.digest, store, opts...)
	if err != nil {
		store.Close()
		return err
	}
	return nil
}

// buildDigest loads the users' passwords, generating those the
// configuration leaves out, and builds the digest authenticator over them.
func (p *parts) buildDigest(cfg *config.Config, log *slog.Logger) error {
	gopts := []guard.Option{guard.WithLogger(log.With("component", "guard")), guard.WithRegisterer(p.metrics)}
	if p.rs != nil {
		// The cluster's nodes share their bans.
		gopts = append(gopts, guard.WithBanStore(p.rs))
	}
	p.guard = guard.New(cfg.Security, cfg.TrustedPrefixes(), gopts...)
	if cfg.Store.Path != "" {
		if err := os.MkdirAll(cfg.Store.Path, 0o700); err != nil {
			return fmt.Errorf("store.path: %w", err)
		}
	}
	var err error
	p.cred.passwords, p.cred.generated, err = registrar.Passwords(cfg.Store.Path, cfg.Users)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	opts := []registrar.DigestOption{
		registrar.WithAuthMetrics(p.metrics), registrar.WithAlgorithms(cfg.SIP.AuthAlgorithms...),
		registrar.WithDigestLogger(log.With("component", "auth")),
		registrar.WithAuthObserver(p.guard),
	}
	passwords := maps.Clone(p.cred.passwords)
	for _, u := range cfg.Users {
		if u.HA1 != "" || u.HA1SHA256 != "" {
			delete(passwords, u.Username)
			opts = append(opts, registrar.WithHA1(u.Username, u.HA1, u.HA1SHA256))
		}
	}
	p.digest, err = registrar.NewDigest(cfg.SIP.Realm, passwords, cfg.TrustedPrefixes(), opts...)
	return err
}

// buildAdmin builds the admin server over the B2BUA, the registrar and
// the guard's bans. With admin.listen set it takes changes with the admin
// token (loadAdminToken); it serves /debug/pprof/ only with admin.pprof.
func (p *parts) buildAdmin(cfg *config.Config) error {
	opts := []admin.Option{admin.WithMetrics(p.metrics), admin.WithCalls(p.b2b), admin.WithRegistrations(p.regs),
		admin.WithBans(p.guard), admin.WithPProf(cfg.Admin.PProf)}
	for _, c := range p.ready {
		opts = append(opts, admin.WithReadyCheck(c.name, c.check))
	}
	if p.ckpt != nil {
		opts = append(opts, admin.WithReadyCheck("checkpoint writes", p.b2b.CheckpointsHealthy))
	}
	if p.cluster != nil {
		opts = append(opts, admin.WithNodes(p.cluster))
	}
	if p.records != nil && p.records.reader != nil {
		opts = append(opts, admin.WithRecords(p.records.reader))
	}
	opts = append(opts, publishedOptions(p.published)...)
	opts = append(opts, p.trunkOptions()...) // trunks.go
	if cfg.Admin.Listen != "" {
		tok, err := loadAdminToken(cfg)
		if err != nil {
			return err
		}
		p.cred.token = tok
		opts = append(opts, admin.WithToken(tok.value))
	}
	var err error
	p.admin, err = admin.New(cfg.Admin.Listen, opts...)
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	return nil
}

// buildCheckpoints connects to store.redis when it is set, and opens where
// the calls' checkpoints are kept: Redis, or else the embedded bbolt file
// calls.db in store.path. With sessions.checkpoint off, or neither store,
// calls are not checkpointed.
func (p *parts) buildCheckpoints(cfg *config.Config, log *slog.Logger) error {
	if cfg.Store.Redis != "" {
		opt, err := redis.ParseURL(cfg.Store.Redis)
		if err != nil {
			return fmt.Errorf("store.redis: %w", err)
		}
		// The store's per-operation timeouts cut off a stalled socket only
		// with ContextTimeoutEnabled.
		opt.ContextTimeoutEnabled = true
		opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		p.redis = redis.NewClient(opt)
		p.closer = append(p.closer, p.redis.Close)
		if err := p.redis.Ping(context.Background()).Err(); err != nil {
			// Not fatal: the stores catch up once Redis answers, and
			// /readyz says so meanwhile.
			log.Warn("Redis does not answer yet; registrations and checkpoints wait for it", "store.redis", cfg.Store.Redis, "error", err)
		}
	}
	if p.redis != nil {
		// The cluster's store: heartbeats, and checkpoints when on.
		p.rs = store.NewRedis(p.redis, nodeID(cfg))
		p.metrics.MustRegister(p.rs.Collectors()...)
	}
	if !cfg.Sessions.Checkpoint {
		return nil
	}
	switch {
	case p.rs != nil:
		p.ckpt = p.rs
		p.ready = append(p.ready, readyCheck{"checkpoint store (Redis)", p.rs.Healthy})
	case cfg.Store.Path != "":
		b, err := store.OpenBolt(filepath.Join(cfg.Store.Path, "calls.db"))
		if err != nil {
			return fmt.Errorf("store.path: %w", err)
		}
		p.ckpt = b
		p.closer = append(p.closer, b.Close)
	}
	return nil
}

// rtpAddress6 is the relay's IPv6 address: rtp.address6, or with both
// rtp.address and rtp.address6 empty every IPv6 address (::) when this
// host can bind one; ok is false for no IPv6 relay.
func rtpAddress6(cfg *config.Config, log *slog.Logger) (netip.Addr, bool) {
	if cfg.RTP.Address6 != "" {
		return netip.MustParseAddr(cfg.RTP.Address6), true
	}
	if cfg.RTP.Address != "" {
		return netip.Addr{}, false
	}
	c, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		log.Info("no IPv6 on this host: the relay serves IPv4 phones only", "error", err)
		return netip.Addr{}, false
	}
	c.Close()
	return netip.IPv6Unspecified(), true
}

// readyCheck is a condition /readyz needs (admin.WithReadyCheck).
type readyCheck struct {
	name  string
	check func() error
}

// nodeID is node.id, or the host name when it is empty.
func nodeID(cfg *config.Config) string {
	if cfg.Node.ID != "" {
		return cfg.Node.ID
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "parley"
	}
	return h
}

// openStore opens where registrations outlive a restart: Redis with
// store.redis (shared by every node that names it), else a bbolt file in
// store.path, or memory only when that is empty.
func (p *parts) openStore(cfg *config.Config, log *slog.Logger) (registrar.Store, error) {
	if p.redis != nil {
		rs, err := registrar.OpenRedisStore(context.Background(), p.redis,
			registrar.WithRedisNode(nodeID(cfg)), registrar.WithRedisLogger(log.With("component", "registrar")))
		if err != nil {
			return nil, fmt.Errorf("store.redis: %w", err)
		}
		p.ready = append(p.ready, readyCheck{"registration store (Redis)", rs.Healthy})
		return rs, nil
	}
	dir := cfg.Store.Path
	if dir == "" {
		return registrar.NewMemoryStore(), nil
	}
	store, err := registrar.OpenBoltStore(filepath.Join(dir, "registrations.db"))
	if err != nil {
		return nil, fmt.Errorf("store.path: %w", err)
	}
	return store, nil
}

// nodeSIPAddr is the address other nodes send this node's calls to: the
// first UDP listener of sip.listen.
func nodeSIPAddr(cfg *config.Config) string {
	for _, l := range cfg.Listeners() {
		if l.Network == "udp" {
			return l.Addr
		}
	}
	return ""
}

// buildMedia builds the RTP relay and returns the dialog options that plug
// it in, with the built-in services the config turns on (services.go).
func (p *parts) buildMedia(cfg *config.Config, log *slog.Logger) ([]dialog.Option, error) {
	pool, err := media.NewPortPool(cfg.RTP.PortMin, cfg.RTP.PortMax)
	if err != nil {
		return nil, fmt.Errorf("rtp: %w", err)
	}
	// rtp.address "": the relay binds every IPv4 address and each call's
	// SDP announces, per leg, the local address facing the phone.
	rtpAddr := netip.IPv4Unspecified()
	if cfg.RTP.Address != "" {
		rtpAddr = netip.MustParseAddr(cfg.RTP.Address)
	}
	relayOpts := []media.RelayOption{}
	if a6, ok := rtpAddress6(cfg, log); ok {
		relayOpts = append(relayOpts, media.WithRelayAddress6(a6))
	}
	p.relay, err = media.NewRelay(pool, rtpAddr, append(relayOpts,
		media.WithRelayTimeout(cfg.RTP.Timeout),
		media.WithRelayRegisterer(p.metrics),
		media.WithRelayLogger(log.With("component", "relay")))...)
	if err != nil {
		return nil, fmt.Errorf("rtp: %w", err)
	}
	// rtp.srtp: SDES-SRTP per leg (media/srtp_session.go).
	srtpPolicy, _ := media.ParseSRTPPolicy(cfg.RTP.SRTP)
	sessions, err := media.NewRelaySessions(p.relay, rtpAddr, cfg.RTP.Codecs, media.WithSessionsLogger(log.With("component", "sdp")),
		media.WithSRTP(srtpPolicy))
	if err != nil {
		return nil, fmt.Errorf("rtp: %w", err)
	}
	opts := []dialog.Option{dialog.WithMedia(relayMedia{sessions})}
	svcs, err := service.Options(service.Env{Config: cfg, Log: log, Ports: pool, RTPAddress: rtpAddr,
		Registerer: p.metrics, Publish: func(v any) { p.published = append(p.published, v) }})
	if err != nil {
		return nil, err
	}
	opts = append(opts, svcs...)
	return opts, nil
}

// buildSIP builds the B2BUA over the registrar and the media options, and
// points the registrar's pings at it.
func (p *parts) buildSIP(cfg *config.Config, log *slog.Logger, opts []dialog.Option) error {
	if p.ckpt != nil {
		opts = append(opts, dialog.WithCheckpoints(p.ckpt))
	}
	capOpts, err := p.captureOptions(cfg, log)
	if err != nil {
		return err
	}
	opts = append(opts, capOpts...)
	p.dns, err = resolve.New(resolve.WithServers(cfg.SIP.DNS...), resolve.WithLogger(log.With("component", "dns")))
	if err != nil {
		return fmt.Errorf("sip.dns: %w", err)
	}
	opts = append(opts, dialog.WithResolver(p.dns))
	trunkOpts, err := p.buildTrunks(cfg, log) // trunks.go
	if err != nil {
		return err
	}
	opts = append(opts, trunkOpts...)
	b2b, err := dialog.New(cfg, append(opts,
		dialog.WithLogger(log.With("component", "dialog")),
		dialog.WithRegisterer(p.metrics),
		dialog.WithAuthenticator(authenticator{p.digest}),
		dialog.WithGuard(p.guard),
		dialog.WithLocator(locator{r: p.regs, cluster: p.redis != nil}),
		dialog.WithQuickHandler(sip.REGISTER, p.regs.HandleRegister),
		dialog.WithNode(nodeID(cfg)),
	)...)
	if err != nil {
		return err
	}
	p.b2b = b2b
	p.ping.set(b2b)
	if p.rs != nil {
		info := store.NodeInfo{ID: nodeID(cfg), SIP: nodeSIPAddr(cfg), Admin: cfg.Admin.Listen, Started: time.Now()}
		p.cluster = newClusterNode(p.rs, b2b, info, cfg.Node.Heartbeat, log.With("component", "cluster"), p.metrics)
		// Alive before the B2BUA loads its checkpoints: a node restarted
		// after its heartbeat ran out must not be taken for dead now.
		if err := p.cluster.beat(context.Background()); err != nil {
			log.Warn("first heartbeat not written", "error", err)
		}
	}
	return nil
}

// run runs the relay, the registrar, the B2BUA, the admin server and stop
// until ctx ends, stop stops parley or one of them fails; then it cancels
// the others and waits for them. It calls ready once the SIP listeners are
// bound. It returns the first failure; being stopped is not one.
func (p *parts) run(ctx context.Context, stop *stopper, sigs <-chan os.Signal, ready func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tasks := []func(context.Context) error{p.relay.Run, p.regs.Run, p.b2b.Serve, p.admin.Serve, p.guard.Run}
	if p.cluster != nil {
		tasks = append(tasks, p.cluster.Run)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(tasks))
	for _, task := range tasks {
		wg.Go(func() { errs <- task(ctx) })
	}
	wg.Go(func() { stop.run(ctx, sigs, cancel) })

	select {
	case <-p.b2b.Ready():
		ready()
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
	return firstFailure(first, errs)
}

// firstFailure returns first, or if that is nil the first error left in
// errs; a cancellation is no failure.
func firstFailure(first error, errs <-chan error) error {
	for err := range errs {
		if first == nil && err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	if errors.Is(first, context.Canceled) {
		return nil
	}
	return first
}
