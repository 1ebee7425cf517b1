package guard

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/goleak"

	"github.com/parley-sip/parley/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeBans is a BanStore in memory: it records what is published and
// hands the test the apply function of the running Watch.
type fakeBans struct {
	// block, when not nil, holds every Publish until it is closed.
	block chan struct{}
	// failFirst makes the first Watch return an error at once.
	failFirst bool

	mu        sync.Mutex
	published []banChange
	watches   int
	apply     func(netip.Addr, time.Time, string)
	stopped   bool // the last Watch has returned
}

func (f *fakeBans) Publish(ctx context.Context, addr netip.Addr, until time.Time, reason string) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, banChange{addr: addr, until: until, reason: reason})
	return nil
}

func (f *fakeBans) Watch(ctx context.Context, apply func(netip.Addr, time.Time, string)) error {
	f.mu.Lock()
	f.watches++
	first := f.watches == 1
	f.apply, f.stopped = apply, false
	f.mu.Unlock()
	if first && f.failFirst {
		return errors.New("redis away")
	}
	<-ctx.Done()
	// A store takes a moment to unsubscribe; Run must wait for it.
	time.Sleep(100 * time.Millisecond)
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	return nil
}

// take returns what was published since the last take.
func (f *fakeBans) take() []banChange {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.published
	f.published = nil
	return out
}

// remote is what the running Watch hands other nodes' bans to.
func (f *fakeBans) remote() func(netip.Addr, time.Time, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apply
}

// sharedGuard returns a guard that shares its bans through a fakeBans,
// with the clock of the synctest bubble it is called in.
func sharedGuard(cfg config.Security) (*Guard, *fakeBans) {
	cfg.BanWindow, cfg.BanTime = time.Minute, 15*time.Minute
	fs := &fakeBans{}
	return New(cfg, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, WithBanStore(fs)), fs
}

// running runs g.Run until the test ends, and then checks that Run
// returned only once Watch had.
func running(t *testing.T, g *Guard, fs *fakeBans) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if !fs.stopped {
			t.Error("Run returned before Watch did")
		}
	})
	synctest.Wait()
}

// TestSharePublishesBansAndLifts: a ban the guard imposes and an Unban are
// published, in order, by Run; a ban lifted here that this node never
// knew is published too.
func TestSharePublishesBansAndLifts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, fs := sharedGuard(config.Security{BanAfter: 2})
		running(t, g, fs)
		start := time.Now()
		g.Failed(attacker, "1001")
		g.Failed(attacker, "1001")
		g.Failed(phone, "1002") // one failure: no ban
		synctest.Wait()
		want := []banChange{{addr: attacker, until: start.Add(15 * time.Minute), reason: "authentication failures"}}
		if got := fs.take(); !slices.Equal(got, want) {
			t.Fatalf("published %+v, want %+v", got, want)
		}
		if !g.Unban(attacker.String()) || g.Unban(phone.String()) {
			t.Fatal("Unban did not lift exactly the ban")
		}
		synctest.Wait()
		want = []banChange{{addr: attacker}, {addr: phone}}
		if got := fs.take(); !slices.Equal(got, want) {
			t.Fatalf("published %+v, want the lifts %+v", got, want)
		}
		if n := testutil.ToFloat64(g.banned); n != 1 {
			t.Errorf("parley_security_bans_total = %v, want 1", n)
		}
	})
}

// TestShareAppliesRemoteBans: a ban another node published is refused
// here like one of the guard's own, listed by Bans, counted by the gauge,
// and not published again; its lift lets the source in again.
func TestShareAppliesRemoteBans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, fs := sharedGuard(config.Security{BanAfter: 10})
		running(t, g, fs)
		apply := fs.remote()
		if apply == nil {
			t.Fatal("Run did not start Watch")
		}
		until := time.Now().Add(time.Hour)
		apply(attacker, until, "authentication failures")
		if g.Allow(attacker) {
			t.Fatal("a source another node banned is allowed")
		}
		if !g.Allow(phone) {
			t.Fatal("another source was banned too")
		}
		want := []Ban{{Address: attacker.String(), Until: until, Reason: "authentication failures"}}
		if got := g.Bans(); !slices.Equal(got, want) {
			t.Fatalf("Bans() = %+v, want %+v", got, want)
		}
		if n := testutil.ToFloat64(g.bansGauge); n != 1 {
			t.Errorf("parley_security_bans = %v, want 1", n)
		}
		if n, s := testutil.ToFloat64(g.banned), testutil.ToFloat64(g.shared); n != 0 || s != 1 {
			t.Errorf("parley_security_bans_total = %v, parley_security_shared_bans_total = %v; want 0 and 1", n, s)
		}
		// The same ban again (a resubscription) is no new ban; an earlier
		// expiry does not shorten it.
		apply(attacker, until.Add(-time.Minute), "authentication failures")
		if got := g.Bans(); !slices.Equal(got, want) || testutil.ToFloat64(g.shared) != 1 {
			t.Errorf("after the ban came again: Bans() = %+v, shared %v", got, testutil.ToFloat64(g.shared))
		}
		synctest.Wait()
		if got := fs.take(); len(got) != 0 {
			t.Errorf("a ban from another node was published again: %+v", got)
		}

		apply(attacker, time.Time{}, "")
		if !g.Allow(attacker) || len(g.Bans()) != 0 || testutil.ToFloat64(g.bansGauge) != 0 {
			t.Fatal("the other node's lift did not lift the ban")
		}
		// An expired ban (a late message) is no ban.
		apply(attacker, time.Now().Add(-time.Second), "authentication failures")
		if !g.Allow(attacker) {
			t.Fatal("an expired ban from another node was applied")
		}
		synctest.Wait()
		if got := fs.take(); len(got) != 0 {
			t.Errorf("a lift from another node was published again: %+v", got)
		}
	})
}

// TestShareRemoteBanExpires: a ban from another node ends at its expiry.
func TestShareRemoteBanExpires(t *testing.T) {
	g, c := newGuard(t, config.Security{})
	g.applyShared(netip.MustParseAddr("::ffff:198.51.100.7"), c.now().Add(time.Minute), "challenges unanswered")
	if g.Allow(attacker) {
		t.Fatal("a ban on the IPv4-mapped address does not hold the IPv4 source")
	}
	c.advance(time.Minute)
	if !g.Allow(attacker) || len(g.Bans()) != 0 {
		t.Fatal("the ban did not expire")
	}
}

// TestShareTrustedNotBanned: a ban from another node on a trusted
// network, which this guard never bans, does not take effect.
func TestShareTrustedNotBanned(t *testing.T) {
	g, c := newGuard(t, config.Security{})
	trusted := netip.MustParseAddr("10.1.2.3")
	g.applyShared(trusted, c.now().Add(time.Hour), "authentication failures")
	if !g.Allow(trusted) || len(g.Bans()) != 0 || testutil.ToFloat64(g.shared) != 0 {
		t.Fatal("a trusted source was banned by another node's ban")
	}
}

// TestShareBounded: bans from other nodes stop at the guard's bound, and
// expired ones make room.
func TestShareBounded(t *testing.T) {
	g, c := newGuard(t, config.Security{})
	g.maxSources = 100
	for i := range 150 {
		until := c.now().Add(time.Hour)
		if i < 50 {
			until = c.now().Add(time.Minute)
		}
		g.applyShared(netip.AddrFrom4([4]byte{100, 0, byte(i >> 8), byte(i)}), until, "authentication failures")
	}
	if n := len(g.bans); n != g.maxSources {
		t.Fatalf("%d bans kept, bound %d", n, g.maxSources)
	}
	c.advance(2 * time.Minute)
	g.applyShared(attacker, c.now().Add(time.Hour), "authentication failures")
	if g.Allow(attacker) {
		t.Fatal("a ban was refused although expired ones could make room")
	}
	if n := len(g.bans); n != 51 {
		t.Errorf("%d bans after the expired ones went, want 51", n)
	}
}

// TestShareQueueFull: publishing never holds up the guard's callers;
// past the queue's bound a ban is dropped and counted.
func TestShareQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, fs := sharedGuard(config.Security{BanAfter: 1})
		fs.block = make(chan struct{})
		running(t, g, fs)
		const n = shareQueue + 10
		ban := func(i int) { g.Failed(netip.AddrFrom4([4]byte{100, 0, byte(i >> 8), byte(i)}), "1001") }
		ban(0)
		synctest.Wait() // Run holds the first, blocked in Publish
		for i := 1; i < n; i++ {
			ban(i)
		}
		if got := testutil.ToFloat64(g.unshared); got != n-shareQueue-1 {
			t.Errorf("parley_security_ban_shares_dropped_total = %v, want %d", got, n-shareQueue-1)
		}
		if got := len(g.Bans()); got != n {
			t.Errorf("%d bans, want %d: a full queue must not keep a ban from taking effect", got, n)
		}
		close(fs.block)
		synctest.Wait()
		if got := len(fs.take()); got != shareQueue+1 {
			t.Errorf("%d bans published, want %d", got, shareQueue+1)
		}
	})
}

// TestShareWatchAgain: a Watch that gives up early is started again.
func TestShareWatchAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, fs := sharedGuard(config.Security{})
		fs.failFirst = true
		running(t, g, fs)
		time.Sleep(watchRetry + time.Millisecond)
		synctest.Wait()
		fs.mu.Lock()
		n := fs.watches
		fs.mu.Unlock()
		if n != 2 {
			t.Errorf("Watch started %d times, want 2 (once again after it failed)", n)
		}
	})
}

// TestMetricNames lints the guard's metrics, those of sharing included.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	New(config.Security{}, nil, WithRegisterer(reg), WithBanStore(&fakeBans{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "parley_security_") {
			t.Errorf("metric %s lacks the parley_security_ prefix", mf.GetName())
		}
	}
	if len(mfs) != 5 {
		t.Errorf("gathered %d metric families, want 5", len(mfs))
	}
}
