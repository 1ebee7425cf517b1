package testcalls

// Part 6, safe on a hostile network: a captured Authorization replayed, a
// password guesser banned, and an INVITE flood answered statelessly. Each
// test runs parley as a process and talks raw SIP over UDP from chosen
// loopback addresses (127.0.0.0/8 is all local on Linux), so "another
// address" is real.

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// uaSocket is a UDP socket on a chosen loopback address.
type uaSocket struct {
	t    *testing.T
	conn *net.UDPConn
	to   *net.UDPAddr
}

func newUASocket(t *testing.T, ip, server string) *uaSocket {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("bind %s: %v", ip, err)
	}
	t.Cleanup(func() { conn.Close() })
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	return &uaSocket{t: t, conn: conn, to: to}
}

func (u *uaSocket) local() string { return u.conn.LocalAddr().String() }

// cseqLine finds a request's CSeq.
var cseqLine = regexp.MustCompile(`(?m)^CSeq: (\d+) (\w+)\r$`)

// ask sends req and returns the first final response for it (its CSeq
// method and number), or nil after wait.
func (u *uaSocket) ask(req string, wait time.Duration) *sip.Response {
	u.t.Helper()
	want := cseqLine.FindStringSubmatch(req)
	if _, err := u.conn.WriteToUDP([]byte(req), u.to); err != nil {
		u.t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 65535)
	for time.Now().Before(deadline) {
		_ = u.conn.SetReadDeadline(deadline)
		n, _, err := u.conn.ReadFromUDP(buf)
		if err != nil {
			return nil
		}
		msg, err := sip.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		res, ok := msg.(*sip.Response)
		if !ok || res.StatusCode < 200 {
			continue
		}
		if cs := res.CSeq(); want != nil && cs != nil && (strconv.Itoa(int(cs.SeqNo)) != want[1] || string(cs.MethodName) != want[2]) {
			continue // a retransmission answering an earlier request
		}
		return res
	}
	return nil
}

// sipRequest writes a request from u with the given Call-ID, CSeq and
// extra header lines.
func (u *uaSocket) request(method, ruri, user, callID string, cseq int, extra ...string) string {
	lines := []string{
		fmt.Sprintf("%s %s SIP/2.0", method, ruri),
		fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d;rport", u.local(), callID, cseq),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@parley.lab>;tag=t-%s", user, callID),
		fmt.Sprintf("To: <sip:%s@parley.lab>", user),
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d %s", cseq, method),
		fmt.Sprintf("Contact: <sip:%s@%s>", user, u.local()),
		"User-Agent: parley-testcalls",
	}
	if method == "INVITE" {
		lines[4] = "To: <sip:nobody@parley.lab>"
	}
	lines = append(lines, extra...)
	lines = append(lines, "Content-Length: 0", "", "")
	return strings.Join(lines, "\r\n")
}

// answerChallenge computes the Authorization for res's first challenge.
func answerChallenge(t *testing.T, res *sip.Response, method, ruri, user, password string, nc int) string {
	t.Helper()
	name := "WWW-Authenticate"
	if res.StatusCode == 407 {
		name = "Proxy-Authenticate"
	}
	h := res.GetHeader(name)
	if h == nil {
		t.Fatalf("%d without %s:\n%s", res.StatusCode, name, res)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: method, URI: ruri, Username: user, Password: password, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return cred.String()
}

// registerFrom registers user from u with the challenge dance and returns
// the final status.
func registerFrom(t *testing.T, u *uaSocket, user, password, callID string) int {
	t.Helper()
	res := u.ask(u.request("REGISTER", "sip:parley.lab", user, callID, 1, "Expires: 600"), 3*time.Second)
	if res == nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER from %s: %v, want 401", u.local(), res)
	}
	auth := answerChallenge(t, res, "REGISTER", "sip:parley.lab", user, password, 1)
	res = u.ask(u.request("REGISTER", "sip:parley.lab", user, callID, 2, "Expires: 600", "Authorization: "+auth), 3*time.Second)
	if res == nil {
		return 0
	}
	return res.StatusCode
}

// TestReplayedAuthorizationRefused: the REGISTER Authorization and the
// INVITE Proxy-Authorization of a genuine exchange, put into new requests
// with new Call-IDs (from another address, and from the same one), get a
// new challenge, never a 2xx or a call; Contact: * with a captured header
// removes nothing.
func TestReplayedAuthorizationRefused(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	phone := newUASocket(t, "127.0.0.21", pl.SIPAddr)
	spy := newUASocket(t, "127.0.0.22", pl.SIPAddr)

	res := phone.ask(phone.request("REGISTER", "sip:parley.lab", "1001", "reg-1", 1, "Expires: 600"), 3*time.Second)
	if res == nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %v, want 401", res)
	}
	captured := answerChallenge(t, res, "REGISTER", "sip:parley.lab", "1001", testUsers["1001"], 1)
	if res := phone.ask(phone.request("REGISTER", "sip:parley.lab", "1001", "reg-1", 2, "Expires: 600", "Authorization: "+captured), 3*time.Second); res == nil || res.StatusCode != 200 {
		t.Fatalf("genuine REGISTER: %v, want 200", res)
	}
	for _, r := range []struct {
		what string
		from *uaSocket
		ext  []string
	}{
		{"from another address", spy, []string{"Expires: 600"}},
		{"from the same address", phone, []string{"Expires: 600"}},
		{"Contact: * from another address", spy, []string{"Expires: 0"}},
	} {
		req := r.from.request("REGISTER", "sip:parley.lab", "1001", "stolen-"+strconv.Itoa(len(r.what)), 1, append(r.ext, "Authorization: "+captured)...)
		if r.what == "Contact: * from another address" {
			req = strings.Replace(req, "Contact: <sip:1001@"+r.from.local()+">", "Contact: *", 1)
		}
		res := r.from.ask(req, 3*time.Second)
		if res == nil || res.StatusCode != 401 {
			t.Errorf("replayed REGISTER Authorization %s: %v, want 401", r.what, res)
		}
	}
	code, body := pl.httpGet(t, "/api/registrations")
	if code != 200 || !strings.Contains(body, phone.local()) || strings.Contains(body, spy.local()) {
		t.Errorf("registrations after the replays (%d): %s", code, body)
	}

	// A call: the Proxy-Authorization of one INVITE does not place another.
	inv := phone.request("INVITE", "sip:nobody@parley.lab", "1001", "call-1", 1)
	res = phone.ask(inv, 3*time.Second)
	if res == nil || res.StatusCode != 407 {
		t.Fatalf("first INVITE: %v, want 407", res)
	}
	proxyAuth := answerChallenge(t, res, "INVITE", "sip:nobody@parley.lab", "1001", testUsers["1001"], 1)
	res = phone.ask(phone.request("INVITE", "sip:nobody@parley.lab", "1001", "call-1", 2, "Proxy-Authorization: "+proxyAuth), 3*time.Second)
	if res == nil || res.StatusCode != 404 {
		t.Fatalf("authenticated INVITE to nobody: %v, want 404", res)
	}
	for _, from := range []*uaSocket{phone, spy} {
		res := from.ask(from.request("INVITE", "sip:nobody@parley.lab", "1001", "call-stolen-"+from.local(), 1, "Proxy-Authorization: "+proxyAuth), 3*time.Second)
		if res == nil || res.StatusCode != 407 {
			t.Errorf("replayed Proxy-Authorization from %s: %v, want 407", from.local(), res)
		}
	}
}

// fail2banFailRegex is the failregex of config/fail2ban/filter.d/parley.conf
// with fail2ban's <HOST> spelled out.
func fail2banFailRegex(t *testing.T) *regexp.Regexp {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(root + "/config/fail2ban/filter.d/parley.conf")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^failregex\s*=\s*(.+)$`).FindSubmatch(conf)
	if m == nil {
		t.Fatal("no failregex in the shipped fail2ban filter")
	}
	re := strings.ReplaceAll(strings.TrimSpace(string(m[1])), "<HOST>", `(?P<host>[0-9a-fA-F.:]+)`)
	return regexp.MustCompile(re)
}

// TestBruteForceBanned: a source guessing passwords is banned after
// security.ban_after failures and then dropped silently, while a phone on
// another address registers throughout; every failure is logged in the
// line the shipped fail2ban filter matches.
func TestBruteForceBanned(t *testing.T) {
	pl := startParley(t, parleyConfig{Extra: "security: {ban_after: 5, ban_window: 60s, ban_time: 30s}\n"})
	attacker := newUASocket(t, "127.0.0.31", pl.SIPAddr)
	phone := newUASocket(t, "127.0.0.32", pl.SIPAddr)
	start := time.Now()
	banned := false
	// As a password cracker does: each wrong answer draws the next
	// challenge, which the next guess answers.
	res := attacker.ask(attacker.request("REGISTER", "sip:parley.lab", "1001", "guess", 1, "Expires: 600"), time.Second)
	if res == nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %v, want 401", res)
	}
	for i := range 20 {
		wrong := answerChallenge(t, res, "REGISTER", "sip:parley.lab", "1001", "guess"+strconv.Itoa(i), 1)
		res = attacker.ask(attacker.request("REGISTER", "sip:parley.lab", "1001", "guess", 2+i, "Expires: 600", "Authorization: "+wrong), time.Second)
		if res == nil {
			banned = true
			t.Logf("banned after %d wrong passwords, %v", i, time.Since(start).Round(time.Millisecond))
			if i != 5 {
				t.Errorf("banned after %d wrong passwords, want security.ban_after = 5", i)
			}
			break
		}
		if res.StatusCode != 401 {
			t.Fatalf("wrong password %d: %d, want 401", i, res.StatusCode)
		}
		if i%2 == 0 {
			if code := registerFrom(t, phone, "1002", testUsers["1002"], fmt.Sprintf("phone-%d", i)); code != 200 {
				t.Fatalf("the phone's REGISTER during the attack: %d, want 200", code)
			}
		}
	}
	if !banned {
		t.Fatal("20 wrong passwords and still answered: no ban")
	}
	if code := registerFrom(t, phone, "1002", testUsers["1002"], "phone-after"); code != 200 {
		t.Fatalf("the phone's REGISTER after the ban: %d, want 200", code)
	}
	m := pl.scrapeMetrics(t)
	if v, _ := m.get("parley_security_bans"); v != 1 {
		t.Errorf("parley_security_bans = %v, want 1", v)
	}
	if v, _ := m.get("parley_security_dropped_total", "reason", "banned"); v < 1 {
		t.Errorf("parley_security_dropped_total{reason=banned} = %v, want the dropped request counted", v)
	}
	re := fail2banFailRegex(t)
	hosts := map[string]int{}
	for _, line := range strings.Split(readFileOrErr(pl.LogPath), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			hosts[m[re.SubexpIndex("host")]]++
		}
	}
	if hosts["127.0.0.31"] != 5 || len(hosts) != 1 {
		t.Errorf("fail2ban filter matched %v, want 127.0.0.31 five times and nothing else", hosts)
	}
}

// TestInviteFloodStateless: for 10 s, 50 sources send unauthenticated
// INVITEs at about 10,000/s, four times the calls parley sets up in a
// second. Each INVITE gets one 407 at most and no retransmission of it (no
// transaction is kept), parley's memory stays bounded, and during the
// flood a phone registers and places a call (to the echo service) that is
// answered and hung up. Bans are off here, so the flood is not cut short.
func TestInviteFloodStateless(t *testing.T) {
	pl := startParley(t, parleyConfig{Extra: "security: {ban_after: 0}\n"})
	const (
		sources   = 50
		perSource = 2000 // 100,000 INVITEs
		window    = 10 * time.Second
	)
	to, _ := net.ResolveUDPAddr("udp", pl.SIPAddr)
	var sent, answered, challenges, repeated atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(window)
	for s := range sources {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(s+1))})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(2)
		go func() { // reader: counts every response until quiet
			defer wg.Done()
			buf := make([]byte, 4096)
			seen := map[string]bool{}
			for {
				_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
				n, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					return
				}
				answered.Add(1)
				text := string(buf[:n])
				if strings.HasPrefix(text, "SIP/2.0 407") {
					challenges.Add(1)
				}
				if i := strings.Index(text, "Call-ID: "); i >= 0 {
					id, _, _ := strings.Cut(text[i:], "\r\n")
					if seen[id] {
						repeated.Add(1)
					}
					seen[id] = true
				}
			}
		}()
		go func() {
			defer wg.Done()
			local := conn.LocalAddr().String()
			for i := range perSource {
				if time.Now().After(stop) {
					return
				}
				msg := fmt.Sprintf("INVITE sip:1002@parley.lab SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-f%d-%d;rport\r\nMax-Forwards: 70\r\n"+
					"From: <sip:1001@parley.lab>;tag=f%d\r\nTo: <sip:1002@parley.lab>\r\nCall-ID: flood-%d-%d\r\nCSeq: 1 INVITE\r\n"+
					"Contact: <sip:1001@%s>\r\nContent-Length: 0\r\n\r\n", local, s, i, i, s, i, local)
				if _, err := conn.WriteToUDP([]byte(msg), to); err == nil {
					sent.Add(1)
				}
				if i%10 == 9 {
					time.Sleep(50 * time.Millisecond) // 200/s a source, 10,000/s in all
				}
			}
		}()
	}
	// A phone registers while the flood runs.
	time.Sleep(time.Second)
	phone := newUASocket(t, "127.0.0.61", pl.SIPAddr)
	if code := registerFrom(t, phone, "1003", testUsers["1003"], "during-flood"); code != 200 {
		t.Errorf("REGISTER during the flood: %d, want 200", code)
	}
	time.Sleep(2 * time.Second)
	callEcho(t, phone, "1003", testUsers["1003"])
	wg.Wait()
	n, got, ch := sent.Load(), answered.Load(), challenges.Load()
	t.Logf("flood: %d INVITEs sent, %d responses (%d of them 407)", n, got, ch)
	if n < 10000 {
		t.Fatalf("only %d INVITEs sent; the flood did not happen", n)
	}
	// Each INVITE gets one 407 at most: none is retransmitted. Under a
	// flood the kernel drops what parley cannot read in time; that is
	// the point of a stateless answer, as long as a good share is answered.
	if twice := repeated.Load(); twice > 0 || got > n {
		t.Errorf("%d responses to %d INVITEs, %d Call-IDs answered more than once: challenges were retransmitted", got, n, twice)
	}
	if ch < n/4 {
		t.Errorf("%d 407s for %d INVITEs: parley stopped answering", ch, n)
	}
	rss := processRSS(t, pl.cmd.Process.Pid)
	t.Logf("RSS after the flood: %d MB", rss>>20)
	if rss > 200<<20 {
		t.Errorf("RSS %d MB after the flood, want under 200 MB", rss>>20)
	}
	m := pl.scrapeMetrics(t)
	if v, _ := m.get("parley_sip_transactions", "side", "server"); v > 100 {
		t.Errorf("%v server transactions held after a flood of strangers, want none for them", v)
	}
}

// callEcho places an authenticated call from u to the echo service (600),
// then acknowledges the 200 and hangs up, as a phone would.
func callEcho(t *testing.T, u *uaSocket, user, password string) {
	t.Helper()
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", strings.Split(u.local(), ":")[0])
	msg := func(method string, cseq int, toTag string, extra ...string) string {
		lines := []string{
			method + " sip:600@parley.lab SIP/2.0",
			fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-echo-%d-%s;rport", u.local(), cseq, method),
			"Max-Forwards: 70",
			fmt.Sprintf("From: <sip:%s@parley.lab>;tag=echo-caller", user),
			"To: <sip:600@parley.lab>" + toTag,
			"Call-ID: echo-call-during-flood",
			fmt.Sprintf("CSeq: %d %s", cseq, method),
			fmt.Sprintf("Contact: <sip:%s@%s>", user, u.local()),
		}
		lines = append(lines, extra...)
		body := ""
		if method == "INVITE" {
			body = sdp
			lines = append(lines, "Content-Type: application/sdp")
		}
		lines = append(lines, fmt.Sprintf("Content-Length: %d", len(body)), "", body)
		return strings.Join(lines, "\r\n")
	}
	res := u.ask(msg("INVITE", 1, ""), 3*time.Second)
	if res == nil || res.StatusCode != 407 {
		t.Fatalf("INVITE to the echo service during the flood: %v, want 407", res)
	}
	auth := answerChallenge(t, res, "INVITE", "sip:600@parley.lab", user, password, 1)
	res = u.ask(msg("INVITE", 2, "", "Proxy-Authorization: "+auth), 5*time.Second)
	if res == nil || res.StatusCode != 200 {
		t.Fatalf("authenticated INVITE during the flood: %v, want 200", res)
	}
	tag := ";tag=" + res.To().Params.GetOr("tag", "")
	if _, err := u.conn.WriteToUDP([]byte(msg("ACK", 2, tag)), u.to); err != nil {
		t.Fatal(err)
	}
	if res := u.ask(msg("BYE", 3, tag), 5*time.Second); res == nil || res.StatusCode != 200 {
		t.Fatalf("BYE during the flood: %v, want 200", res)
	}
}

// processRSS reads VmRSS of pid in bytes.
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
