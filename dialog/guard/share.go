package guard

import (
	"context"
	"net/netip"
	"time"
)

// BanStore shares bans between nodes.
type BanStore interface {
	// Publish records a ban on addr until `until` (zero until: the ban is lifted) so that every node applies it.
	Publish(ctx context.Context, addr netip.Addr, until time.Time, reason string) error
	// Watch calls apply for every ban (or lift) other nodes publish, and for every ban in force when it starts and after each reconnect; it returns when ctx ends.
	Watch(ctx context.Context, apply func(addr netip.Addr, until time.Time, reason string)) error
}

// shareQueue bounds the bans and lifts waiting to be published. A node
// bans one source at most once per ban_time, so the queue fills only
// while the store is away during a flood of bans; past it the others are
// told nothing of the rest (parley_security_ban_shares_dropped_total).
const shareQueue = 1024

// watchRetry is how long Run waits before it watches again after Watch
// returned early.
const watchRetry = time.Second

// banChange is a ban (or, with a zero until, a lift) to publish.
type banChange struct {
	addr   netip.Addr
	until  time.Time
	reason string
}

// WithBanStore shares the guard's bans through bs: each ban the guard
// imposes and each Unban is published there, from Run's goroutine, and
// Run applies the bans and lifts other nodes publish.
func WithBanStore(bs BanStore) Option {
	return func(g *Guard) {
		g.store = bs
		g.outbox = make(chan banChange, shareQueue)
	}
}

// share queues c for Run to publish, without waiting: when the queue is
// full, c is dropped and counted.
func (g *Guard) share(c banChange) {
	if g.store == nil {
		return
	}
	select {
	case g.outbox <- c:
	default:
		g.unshared.Inc()
		g.log.Debug("ban not shared: the queue to the ban store is full", "source_ip", c.addr.String())
	}
}

// publish hands c to the store.
func (g *Guard) publish(ctx context.Context, c banChange) {
	if err := g.store.Publish(ctx, c.addr, c.until, c.reason); err != nil && ctx.Err() == nil {
		what := "ban"
		if c.until.IsZero() {
			what = "unban"
		}
		g.log.Warn("the other nodes were not told of a "+what, "source_ip", c.addr.String(), "error", err)
	}
}

// watch applies what other nodes publish until ctx ends, watching again
// whenever the store's Watch gives up early.
func (g *Guard) watch(ctx context.Context) {
	for {
		err := g.store.Watch(ctx, g.applyShared)
		if ctx.Err() != nil {
			return
		}
		g.log.Warn("watching the other nodes' bans stopped; watching again", "error", err, "in", watchRetry)
		t := time.NewTimer(watchRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// applyShared applies a ban or lift another node published (or a ban the
// store holds). A ban is kept like one of the guard's own, but not
// published again; it is ignored for trusted networks, which the guard
// never bans, and when the guard already holds maxSources bans. Of two
// bans on one address the later expiry wins.
func (g *Guard) applyShared(addr netip.Addr, until time.Time, reason string) {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return
	}
	now := g.now()
	if until.IsZero() || !now.Before(until) {
		g.mu.Lock()
		_, had := g.bans[addr]
		delete(g.bans, addr)
		delete(g.sources, addr)
		g.mu.Unlock()
		if had && until.IsZero() {
			g.log.Info("source unbanned by another node", "source_ip", addr.String())
		}
		return
	}
	if g.trustedAddr(addr) {
		g.log.Debug("ban from another node ignored: the source is trusted", "source_ip", addr.String())
		return
	}
	g.mu.Lock()
	old, had := g.bans[addr]
	had = had && now.Before(old.Until)
	if !had && len(g.bans) >= g.maxSources {
		g.sweepLocked(now)
		if len(g.bans) >= g.maxSources {
			g.mu.Unlock()
			g.log.Debug("ban from another node ignored: too many bans", "source_ip", addr.String())
			return
		}
	}
	if had && !old.Until.Before(until) {
		g.mu.Unlock()
		return
	}
	g.bans[addr] = Ban{Address: addr.String(), Until: until, Reason: reason}
	delete(g.sources, addr)
	g.mu.Unlock()
	if !had {
		g.shared.Inc()
		g.log.Info("source banned by another node", "source_ip", addr.String(), "reason", reason, "until", until.Format(time.RFC3339))
	}
}
