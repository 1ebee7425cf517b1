package testcalls

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The trunk tests run two parleys on their own loopback addresses: the
// provider (trunkProviderIP), which has the account trunkuser, and parley
// A (trunkLocalIP), which registers to it as a client and routes 0NNNN
// through it.
const (
	trunkLocalIP    = "127.0.2.1"
	trunkProviderIP = "127.0.2.2"
	trunkPassword   = "trunk-pw-7"
)

// trunkStatus is one entry of GET /api/trunks.
type trunkStatus struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Contact   string    `json:"contact"`
	Expires   time.Time `json:"expires"`
	Next      time.Time `json:"next"`
	Failures  int       `json:"failures"`
	LastError string    `json:"last_error"`
}

// startTrunkParley runs a parley on ip with the test users (and extraUsers
// as YAML list entries), the relay on rng and extra YAML sections.
func startTrunkParley(t *testing.T, ip string, rng rtpRange, extraUsers, extra string) *parley {
	t.Helper()
	needParley(t)
	dir := t.TempDir()
	sipPort, adminPort := freePortsOn(t, ip)
	p := &parley{
		SIPAddr:    net.JoinHostPort(ip, fmt.Sprint(sipPort)),
		AdminAddr:  net.JoinHostPort(ip, fmt.Sprint(adminPort)),
		ConfigPath: filepath.Join(dir, "parley.yaml"),
		LogPath:    filepath.Join(dir, "parley.log"),
		exited:     make(chan struct{}),
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sip:\n  listen: [udp://%s]\n  realm: parley.lab\n  trusted: []\n", p.SIPAddr)
	fmt.Fprintf(&b, "admin:\n  listen: %s\n", p.AdminAddr)
	fmt.Fprintf(&b, "store:\n  path: ''\n")
	b.WriteString("users:\n")
	for _, u := range []string{"1001", "1002", "1003"} {
		fmt.Fprintf(&b, "  - {username: %s, password: %s}\n", yamlQuote(u), yamlQuote(testUsers[u]))
	}
	b.WriteString(extraUsers)
	b.WriteString("registrar: {min_expires: 60, max_expires: 3600, qualify: 0s}\n")
	fmt.Fprintf(&b, "rtp: {address: %s, port_min: %d, port_max: %d}\n", ip, rng.Min, rng.Max)
	b.WriteString("sessions: {max_calls: 0, max_calls_per_user: 0}\nlog: {level: debug}\ncdr: {path: ''}\n")
	b.WriteString(extra)
	writeFile(t, p.ConfigPath, b.String())
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
	return p
}

// startProvider runs the provider: the test users and trunkuser.
func startProvider(t *testing.T) *parley {
	t.Helper()
	return startTrunkParley(t, trunkProviderIP, rtpRange{6900, 6999},
		fmt.Sprintf("  - {username: trunkuser, password: %s}\n", yamlQuote(trunkPassword)), "routes: []\n")
}

// startTrunkClient runs parley A with a trunk "prov" to provider, with
// password, whose calls for 0NNNN go through it and whose calls from the
// provider go to 1001. It asks for 30 s, which the provider's
// min_expires (60) refuses with 423.
func startTrunkClient(t *testing.T, provider *parley, password string) *parley {
	t.Helper()
	extra := fmt.Sprintf("trunks:\n  - {name: prov, registrar: %s, username: trunkuser, password: %s, expires: 30, inbound: '1001', retry: 2s}\n",
		provider.SIPAddr, yamlQuote(password))
	extra += fmt.Sprintf("routes:\n  - {match: '^0(\\d+)$', target: 'sip:$1@%s', trunk: prov}\n", trunkProviderIP)
	return startTrunkParley(t, trunkLocalIP, rtpRange{6800, 6899}, "", extra)
}

// trunks reads p's GET /api/trunks.
func (p *parley) trunks(t *testing.T) []trunkStatus {
	t.Helper()
	code, body := p.httpGet(t, "/api/trunks")
	if code != 200 {
		t.Fatalf("GET /api/trunks: %d %s", code, body)
	}
	var out []trunkStatus
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET /api/trunks: %v\n%s", err, body)
	}
	return out
}

// waitTrunk polls p's trunk until cond holds, and returns it.
func (p *parley) waitTrunk(t *testing.T, d time.Duration, what string, cond func(trunkStatus) bool) trunkStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	var last []trunkStatus
	for time.Now().Before(deadline) {
		last = p.trunks(t)
		if len(last) == 1 && cond(last[0]) {
			return last[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("trunk never %s within %v; last: %+v", what, d, last)
	return trunkStatus{}
}

// registeredUsers lists the users in p's GET /api/registrations.
func registeredUsers(t *testing.T, p *parley) string {
	t.Helper()
	_, body := p.httpGet(t, "/api/registrations")
	return body
}

// trunkRTPSocket binds a phone's RTP socket on ip:port.
func trunkRTPSocket(t *testing.T, ip string, port int) *rtpSocket {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	t.Cleanup(func() { conn.Close() })
	return &rtpSocket{t: t, conn: conn}
}

// TestTrunkRegisterCallBothWays: parley A registers to the provider as
// trunkuser (after the provider's 423 asks for a longer expiry, and its
// 401 for credentials); a phone on A dials 01002 and reaches the
// provider's 1002 through the trunk, the provider's 407 answered by A,
// with audio both ways and BYE from either side; the provider's 1002
// calls trunkuser and reaches A's 1001, unchallenged; on shutdown A
// unregisters.
func TestTrunkRegisterCallBothWays(t *testing.T) {
	prov := startProvider(t)
	a := startTrunkClient(t, prov, trunkPassword)

	st := a.waitTrunk(t, 10*time.Second, "registered", func(s trunkStatus) bool { return s.State == "registered" })
	if left := time.Until(st.Expires); left < 50*time.Second || left > 61*time.Second {
		t.Errorf("trunk registered for %v; want the provider's min_expires, 60s (after its 423)", left.Round(time.Second))
	}
	if !strings.Contains(registeredUsers(t, prov), `"trunkuser"`) {
		t.Fatalf("provider's /api/registrations has no trunkuser:\n%s", registeredUsers(t, prov))
	}
	a.waitMetric(t, 3*time.Second, equals(1), "parley_trunk_registered", "trunk", "prov")
	out, err := exec.Command(parleyBin, "trunks", "-admin", a.AdminAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "prov") || !strings.Contains(string(out), "registered") {
		t.Errorf("parley trunks: %v\n%s", err, out)
	}

	alice := newPhoneAt(t, "1001", a.SIPAddr, "udp", trunkLocalIP)
	alice.mustRegister()
	bob := newPhoneAt(t, "1002", prov.SIPAddr, "udp", trunkProviderIP)
	bob.mustRegister()
	aSock, bSock := trunkRTPSocket(t, trunkLocalIP, 7400), trunkRTPSocket(t, trunkProviderIP, 7402)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)

	t.Run("out through the trunk", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		out := alice.call(ctx, "01002")
		out.mustAnswered(t)
		in := bob.mustEvent(evInvite)
		if u := in.Req.From().Address.User; u != "trunkuser" {
			t.Errorf("the provider's phone got the call from %q, want trunkuser (the trunk's user)", u)
		}
		select {
		case <-in.Call.Answered:
		case <-time.After(callTimeout):
			t.Fatal("callee: the 200 was never ACKed")
		}
		mc := &mediaCall{Out: out, In: in,
			CallerSees: parseAudio(t, "200 to the caller", out.Final.Body()),
			CalleeSees: parseAudio(t, "INVITE to the callee", in.Req.Body())}
		as := rtpStream{Tag: 0xA1, SSRC: 0x1001AAAA, PayloadType: firstPT(t, mc.CallerSees), Count: 50, Interval: 10 * time.Millisecond}
		bs := rtpStream{Tag: 0xB2, SSRC: 0x1002BBBB, PayloadType: firstPT(t, mc.CalleeSees), Count: 50, Interval: 10 * time.Millisecond}
		aGot, bGot := exchange(t, aSock, bSock, mc, as, bs)
		checkStream(t, "A's 1001 → provider's 1002", bGot, as, mc.CalleeSees.Addr)
		checkStream(t, "provider's 1002 → A's 1001", aGot, bs, mc.CallerSees.Addr)
		out.hangup(t)
		bob.mustEvent(evBye)
		a.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
		prov.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
		if !strings.Contains(readFileOrErr(a.LogPath), "trunk challenged the call; answered") {
			t.Errorf("A's log does not show the provider's challenge answered")
		}
	})

	t.Run("out, callee hangs up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		out := alice.call(ctx, "01002")
		out.mustAnswered(t)
		in := bob.mustEvent(evInvite)
		in.Call.hangup(t)
		alice.mustEvent(evBye)
		a.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	})

	t.Run("in from the provider", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		out := bob.call(ctx, "trunkuser")
		out.mustAnswered(t)
		in := alice.mustEvent(evInvite)
		if u := in.Req.From().Address.User; u != "1002" {
			t.Errorf("A's 1001 got the call from %q, want the provider's 1002", u)
		}
		in.Call.hangup(t)
		bob.mustEvent(evBye)
		prov.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	})

	// Shutdown unregisters: the provider forgets trunkuser at once.
	a.stop(t)
	if regs := registeredUsers(t, prov); strings.Contains(regs, `"trunkuser"`) {
		t.Errorf("trunkuser still registered at the provider after A stopped:\n%s", regs)
	}
	if strings.Contains(readFileOrErr(a.LogPath), trunkPassword) {
		t.Errorf("A's log holds the trunk's password")
	}
}

// TestTrunkRefusedBacksOff: with a wrong password the provider refuses
// the credentials; A shows the trunk failed, counts the failure, and
// tries again no sooner than trunks[].retry (2s), then backs off further.
func TestTrunkRefusedBacksOff(t *testing.T) {
	prov := startProvider(t)
	a := startTrunkClient(t, prov, "wrong-password-1")

	first := a.waitTrunk(t, 10*time.Second, "failed", func(s trunkStatus) bool { return s.State == "failed" && s.Failures >= 1 })
	seenFirst := time.Now()
	if first.Failures != 1 {
		t.Fatalf("first failure seen with %d failures", first.Failures)
	}
	if !strings.Contains(first.LastError, "refused") {
		t.Errorf("last_error %q does not say the credentials were refused", first.LastError)
	}
	if wait := first.Next.Sub(seenFirst); wait < time.Second {
		t.Errorf("next attempt due in %v; want about 2s (trunks[].retry)", wait)
	}
	a.waitMetric(t, 3*time.Second, atLeast(1), "parley_trunk_registration_failures_total", "trunk", "prov")
	a.waitMetric(t, time.Second, equals(0), "parley_trunk_registered", "trunk", "prov")

	second := a.waitTrunk(t, 10*time.Second, "failed twice", func(s trunkStatus) bool { return s.Failures >= 2 })
	if gap := time.Since(seenFirst); gap < 1900*time.Millisecond {
		t.Errorf("second attempt %v after the first failure; want at least trunks[].retry, 2s", gap)
	}
	// The second wait doubles: at least 4s.
	if wait := time.Until(second.Next); wait < 3500*time.Millisecond {
		t.Errorf("after two failures the next attempt is due in %v; want at least 4s", wait)
	}
	if second.State != "failed" {
		t.Errorf("state %q after two refusals, want failed", second.State)
	}
	if regs := registeredUsers(t, prov); strings.Contains(regs, `"trunkuser"`) {
		t.Errorf("trunkuser registered at the provider with a wrong password:\n%s", regs)
	}
	if strings.Contains(readFileOrErr(a.LogPath), "wrong-password-1") {
		t.Errorf("A's log holds the trunk's password")
	}
}
