package testcalls

// Part 7: the nodes of a cluster share their bans through Redis, so a
// source banned by one node is refused by every node, and an operator's
// unban on any node lets it in everywhere.

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// waitBans polls p's GET /api/bans until cond holds, failing after d.
func waitBans(t *testing.T, p *parley, d time.Duration, what string, cond func([]apiBan) bool) []apiBan {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		bans := p.apiBans(t)
		if cond(bans) {
			return bans
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/bans on %s: %+v after %v; want %s", p.SIPAddr, bans, d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers reports whether the node at u's server answers a REGISTER from
// u within a second, trying up to three times (a datagram lost on a busy
// loopback is no ban); the answer must be a challenge.
func answers(t *testing.T, u *uaSocket, callID string) bool {
	t.Helper()
	for i := range 3 {
		res := u.ask(u.request("REGISTER", "sip:parley.lab", "1001", callID, 1+i, "Expires: 600"), time.Second)
		if res == nil {
			continue
		}
		if res.StatusCode != 401 {
			t.Fatalf("REGISTER from %s: %d, want 401", u.local(), res.StatusCode)
		}
		return true
	}
	return false
}

// TestBansShared: two nodes share one Redis. A source that guesses
// passwords on node A (security.ban_after 3) is banned there; within 2 s
// node B lists the ban (with A's reason and expiry) and drops the
// source's requests too. DELETE /api/bans/{addr} on B lifts the ban on
// both nodes: A challenges the source again.
func TestBansShared(t *testing.T) {
	const src = "127.0.0.9"
	security := "security: {ban_after: 3, ban_window: 60s, ban_time: 60s}\n"
	rs := startRedis(t)
	a := startNodeExtra(t, "node-a", "127.0.0.6", rs.URL, rtpRange{28600, 28699}, security, "127.0.0.7")
	b := startNodeExtra(t, "node-b", "127.0.0.7", rs.URL, rtpRange{28700, 28799}, security, "127.0.0.6")

	toA, toB := newUASocket(t, src, a.SIPAddr), newUASocket(t, src, b.SIPAddr)
	if !answers(t, toB, "before-ban") {
		t.Fatalf("node B does not answer %s before any ban", src)
	}
	if n := guessUntilBanned(t, toA, "1001", 10); n != 3 {
		t.Errorf("node A banned %s after %d wrong passwords, want security.ban_after = 3", src, n)
	}
	banned := time.Now()
	onA := waitBans(t, a, time.Second, "the ban on "+src, func(bs []apiBan) bool { return len(bs) == 1 })
	if onA[0].Address != src || onA[0].Reason != "authentication failures" {
		t.Fatalf("node A's bans: %+v, want %s for authentication failures", onA, src)
	}

	// B learns of it from Redis, not from the source: it is A's ban.
	onB := waitBans(t, b, 2*time.Second, "A's ban on "+src, func(bs []apiBan) bool { return len(bs) > 0 })
	t.Logf("node B has the ban %v after A imposed it", time.Since(banned).Round(time.Millisecond))
	if len(onB) != 1 || onB[0].Address != src || onB[0].Reason != "authentication failures" || !onB[0].Until.Equal(onA[0].Until) {
		t.Fatalf("node B's bans: %+v, want A's %+v", onB, onA)
	}
	if res := toB.ask(toB.request("REGISTER", "sip:parley.lab", "1001", "after-ban", 1, "Expires: 600"), time.Second); res != nil {
		t.Fatalf("node B answered %s with %d after A banned it, want no answer", src, res.StatusCode)
	}
	if res := toA.ask(toA.request("REGISTER", "sip:parley.lab", "1001", "after-ban-a", 1, "Expires: 600"), time.Second); res != nil {
		t.Fatalf("node A answered %s with %d while it is banned", src, res.StatusCode)
	}

	// The operator lifts it on B, with B's admin token.
	token := storedToken(t, filepath.Join(filepath.Dir(b.ConfigPath), "data"))
	if code, body := b.httpDoToken(t, http.MethodDelete, "/api/bans/"+src, token); code != http.StatusNoContent {
		t.Fatalf("DELETE /api/bans/%s on B: %d %s, want 204", src, code, body)
	}
	if bans := b.apiBans(t); len(bans) != 0 {
		t.Errorf("node B's bans after the DELETE: %+v, want none", bans)
	}
	waitBans(t, a, 2*time.Second, "none after B's unban", func(bs []apiBan) bool { return len(bs) == 0 })
	if !answers(t, toA, "after-unban") {
		t.Fatalf("node A does not answer %s after B lifted the ban", src)
	}
	if !answers(t, toB, "after-unban-b") {
		t.Fatalf("node B does not answer %s after it lifted the ban", src)
	}
}
