package guard

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/parley-sip/parley/config"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	attacker = netip.MustParseAddr("198.51.100.7")
	phone    = netip.MustParseAddr("192.0.2.10")
	rig      = netip.MustParseAddr("127.0.0.1")
)

func newGuard(t *testing.T, cfg config.Security) (*Guard, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	if cfg.BanWindow == 0 {
		cfg.BanWindow = time.Minute
	}
	if cfg.BanTime == 0 {
		cfg.BanTime = 15 * time.Minute
	}
	return New(cfg, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, WithClock(c.now)), c
}

// TestBanAfterFailures: ban_after wrong passwords within the window ban
// the source until ban_time has passed; another source is untouched.
func TestBanAfterFailures(t *testing.T) {
	g, c := newGuard(t, config.Security{BanAfter: 10})
	for i := range 9 {
		g.Failed(attacker, "1001")
		if !g.Allow(attacker) {
			t.Fatalf("banned after %d failures, want 10", i+1)
		}
	}
	g.Failed(attacker, "1001")
	if g.Allow(attacker) {
		t.Fatal("not banned after 10 failures")
	}
	if !g.Allow(phone) {
		t.Fatal("another source was banned too")
	}
	if bans := g.Bans(); len(bans) != 1 || bans[0].Address != attacker.String() || bans[0].Reason != "authentication failures" {
		t.Fatalf("Bans() = %+v", bans)
	}
	c.advance(15*time.Minute + time.Second)
	if !g.Allow(attacker) {
		t.Fatal("the ban did not expire")
	}
}

// TestFailuresSpreadOverWindows: failures that never reach ban_after
// within one window ban nobody.
func TestFailuresSpreadOverWindows(t *testing.T) {
	g, c := newGuard(t, config.Security{BanAfter: 10})
	for range 5 {
		for range 9 {
			g.Failed(attacker, "1001")
		}
		c.advance(61 * time.Second)
	}
	if !g.Allow(attacker) {
		t.Fatal("banned for 9 failures a window")
	}
}

// TestUnansweredChallenges: a source that never answers its challenges is
// banned; one whose challenges come back right (a SIPp load test from one
// address, thousands a second) never is, even with many outstanding.
func TestUnansweredChallenges(t *testing.T) {
	g, c := newGuard(t, config.Security{BanAfter: 10})
	for range 10 {
		g.Challenged(attacker)
	}
	if !g.Allow(attacker) {
		t.Fatal("banned while its challenges may still be on their way")
	}
	c.advance(answerGrace)
	g.Challenged(attacker)
	if g.Allow(attacker) {
		t.Fatal("a source with 11 challenges unanswered after the grace is not banned")
	}
	// A load test starting: hundreds of challenges out before the first
	// answer comes back, then answers.
	load := netip.MustParseAddr("192.0.2.99")
	for range 500 {
		g.Challenged(load)
	}
	c.advance(10 * time.Millisecond)
	g.Succeeded(load)
	c.advance(answerGrace)
	for range 500 {
		g.Challenged(load)
	}
	if !g.Allow(load) {
		t.Fatal("a load test whose challenges come back was banned")
	}
	for range 5000 {
		g.Challenged(rig) // outside the trusted network: 127.0.0.1 is not 10/8
		g.Succeeded(rig)
	}
	for range 50 {
		g.Challenged(rig) // a burst still in flight
	}
	if !g.Allow(rig) {
		t.Fatal("a source whose challenges are answered was banned")
	}
}

// TestTrustedNeverBanned: trusted networks are never banned, limited or
// dropped as scanners.
func TestTrustedNeverBanned(t *testing.T) {
	g, _ := newGuard(t, config.Security{BanAfter: 1, Rate: 1, Burst: 1, DropUserAgents: []string{"friendly-scanner"}})
	trusted := netip.MustParseAddr("10.1.2.3")
	for range 20 {
		g.Failed(trusted, "x")
		g.Challenged(trusted)
		if !g.Stranger(trusted) {
			t.Fatal("a trusted source was rate limited")
		}
	}
	if !g.Allow(trusted) || g.Scanner(trusted, "friendly-scanner") {
		t.Fatal("a trusted source was banned or dropped")
	}
}

// TestStrangerRate: the token bucket lets burst requests through, then
// rate a second.
func TestStrangerRate(t *testing.T) {
	g, c := newGuard(t, config.Security{Rate: 2, Burst: 3})
	for i := range 3 {
		if !g.Stranger(attacker) {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if g.Stranger(attacker) {
		t.Fatal("a fourth request within the burst was let through")
	}
	c.advance(500 * time.Millisecond)
	if !g.Stranger(attacker) || g.Stranger(attacker) {
		t.Fatal("after 0.5 s at 2/s exactly one more request should pass")
	}
	off, _ := newGuard(t, config.Security{})
	for range 1000 {
		if !off.Stranger(attacker) {
			t.Fatal("rate 0 limited a source")
		}
	}
}

// TestScanner: User-Agents named in drop_user_agents, in any case, are
// scanners.
func TestScanner(t *testing.T) {
	g, _ := newGuard(t, config.Security{DropUserAgents: []string{"friendly-scanner", "sipvicious"}})
	for ua, want := range map[string]bool{"friendly-scanner": true, "SIPVicious 0.3": true, "Linphone/5.1": false, "": false} {
		if got := g.Scanner(attacker, ua); got != want {
			t.Errorf("Scanner(%q) = %v, want %v", ua, got, want)
		}
	}
}

// TestUnban lifts a ban.
func TestUnban(t *testing.T) {
	g, _ := newGuard(t, config.Security{BanAfter: 1})
	g.Failed(attacker, "x")
	if g.Unban("203.0.113.1") || !g.Unban(attacker.String()) || !g.Allow(attacker) || len(g.Bans()) != 0 {
		t.Fatal("Unban did not lift exactly the ban")
	}
}

// TestBounded: a flood from ever new addresses fills the table to its
// bound and no further.
func TestBounded(t *testing.T) {
	g, _ := newGuard(t, config.Security{BanAfter: 10})
	g.maxSources = 1000
	for i := range g.maxSources + 1000 {
		g.Challenged(netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := len(g.sources); n != g.maxSources {
		t.Fatalf("%d sources kept, bound %d", n, g.maxSources)
	}
}
