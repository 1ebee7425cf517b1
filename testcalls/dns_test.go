package testcalls

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/miekg/dns"
)

// Route targets by name (RFC 3263): parley resolves sip:$1@pbx.test with
// its DNS pointed at a server the test runs on 127.0.1.53, whose records
// lead to sipgo phones on other loopback addresses (127.0.1.x, ::1).

// dnsZone is a DNS server on 127.0.1.53 (a port picked at start) that
// answers from its records: those of the asked name and type, with the
// CNAMEs on the way, NXDOMAIN for a name it holds nothing for; or, when
// silent, nothing at all.
type dnsZone struct {
	Addr   string
	mu     sync.Mutex
	rrs    []dns.RR
	asked  map[string]int // "name TYPE" -> queries
	silent bool
}

func startDNSZone(t *testing.T, records ...string) *dnsZone {
	t.Helper()
	z := &dnsZone{asked: map[string]int{}}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		z.rrs = append(z.rrs, rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.1.53:0")
	if err != nil {
		t.Fatal(err)
	}
	z.Addr = pc.LocalAddr().String()
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return z
}

func (z *dnsZone) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	name, qt := q.Question[0].Name, q.Question[0].Qtype
	z.asked[strings.ToLower(name)+" "+dns.TypeToString[qt]]++
	if z.silent {
		return
	}
	m := new(dns.Msg)
	m.SetReply(q)
	known := false
	for range 8 {
		var cname string
		for _, rr := range z.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			known = true
			if h.Rrtype == qt {
				m.Answer = append(m.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				m.Answer = append(m.Answer, rr)
				cname = c.Target
			}
		}
		if cname == "" {
			break
		}
		name = cname
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

func (z *dnsZone) queries(name, qtype string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.asked[name+" "+qtype]
}

// startDNSParley runs parley with one route, '^9(\d+)$' to target, its
// DNS at dnsAddr and its relay on rng; with v6 it listens on ::1 too.
func startDNSParley(t *testing.T, target, dnsAddr string, rng rtpRange, v6 bool) *parley {
	t.Helper()
	needParley(t)
	dir := t.TempDir()
	port := freeSIPPort(t)
	adminPort := freeTCPPort(t)
	p := &parley{
		SIPAddr:    fmt.Sprintf("127.0.0.1:%d", port),
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", adminPort),
		ConfigPath: filepath.Join(dir, "parley.yaml"),
		LogPath:    filepath.Join(dir, "parley.log"),
		exited:     make(chan struct{}),
	}
	listen := []string{"udp://" + p.SIPAddr, "tcp://" + p.SIPAddr}
	if v6 {
		listen = append(listen, fmt.Sprintf("udp://[::1]:%d", port))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sip:\n  listen: ['%s']\n  realm: parley.lab\n  dns: [%s]\n", strings.Join(listen, "', '"), yamlQuote(dnsAddr))
	fmt.Fprintf(&b, "admin:\n  listen: %s\nstore:\n  path: \"\"\nusers:\n", p.AdminAddr)
	for _, u := range []string{"1001", "1002", "1003"} {
		fmt.Fprintf(&b, "  - {username: %s, password: %s}\n", yamlQuote(u), yamlQuote(testUsers[u]))
	}
	fmt.Fprintf(&b, "routes:\n  - {match: '^9(\\d+)$', target: %s}\n", yamlQuote(target))
	b.WriteString("registrar: {qualify: 0s}\nlog: {level: debug}\n")
	b.WriteString(rng.yaml(nil, ""))
	writeFile(t, p.ConfigPath, b.String())
	// Registered before run's, so it reads the log once parley stopped: a
	// parley built with -race reports there.
	t.Cleanup(func() {
		if strings.Contains(readFileOrErr(p.LogPath), "DATA RACE") {
			t.Errorf("parley reported a data race:\n%s", tail(p.LogPath, 80))
		}
	})
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
	return p
}

// refusingUAS is a SIP peer on host that answers every INVITE with code.
func refusingUAS(t *testing.T, host string, code int, reason string) (addr string, invites func() int) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("refuser"), sipgo.WithUserAgentHostname(host))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		n++
		mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	conn, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeUDP(conn)
	t.Cleanup(func() { conn.Close(); ua.Close() })
	return conn.LocalAddr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// callRoute has phone 1001 call 9<num> through p and returns the call.
func callRoute(t *testing.T, p *parley, num string) *outboundCall {
	t.Helper()
	caller := newPhone(t, "1001", p.SIPAddr, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return caller.call(ctx, "9"+num)
}

// TestDNSRouteNAPTR: NAPTR (SIP+D2U) → SRV → A leads to a phone on
// 127.0.1.2, which answers; the INVITE keeps the name in its Request-URI
// (RFC 3263 resolves the next hop, not the URI).
func TestDNSRouteNAPTR(t *testing.T) {
	callee := newPhoneAt(t, "1002", "127.0.0.1:5060", "udp", "127.0.1.2")
	z := startDNSZone(t,
		`pbx.test. 60 IN NAPTR 10 50 "s" "SIP+D2U" "" _sip._udp.pbx.test.`,
		`_sip._udp.pbx.test. 60 IN SRV 10 0 `+portOf(callee.Addr)+` host1.pbx.test.`,
		`host1.pbx.test. 60 IN A 127.0.1.2`,
	)
	p := startDNSParley(t, "sip:$1@pbx.test", z.Addr, rtpRange{6600, 6639}, false)
	c := callRoute(t, p, "1234")
	c.mustAnswered(t)
	in := callee.mustEvent(evInvite)
	if ru := in.Req.Recipient; ru.User != "1234" || ru.Host != "pbx.test" {
		t.Errorf("the callee's Request-URI is %s, want sip:1234@pbx.test", ru.String())
	}
	c.hangup(t)
	callee.mustEvent(evBye)
	for _, q := range [][2]string{{"pbx.test.", "NAPTR"}, {"_sip._udp.pbx.test.", "SRV"}, {"host1.pbx.test.", "A"}} {
		if z.queries(q[0], q[1]) == 0 {
			t.Errorf("parley never asked for %s %s", q[0], q[1])
		}
	}
	// A second call is resolved from the cache.
	c = callRoute(t, p, "1235")
	c.mustAnswered(t)
	callee.mustEvent(evInvite)
	c.hangup(t)
	if n := z.queries("pbx.test.", "NAPTR"); n != 1 {
		t.Errorf("NAPTR asked %d times for two calls, want 1 (cached for its TTL)", n)
	}
}

// TestDNSRouteFailover: two SRV targets of different priority; the first
// fails (answers 503, has nothing listening on TCP, or stays silent on
// UDP) and the call reaches the second (RFC 3263 §4.3).
func TestDNSRouteFailover(t *testing.T) {
	cases := []struct {
		name  string
		first func(t *testing.T) (records []string, reached func() bool)
		rng   rtpRange
	}{
		{"503", func(t *testing.T) ([]string, func() bool) {
			addr, invites := refusingUAS(t, "127.0.1.3", 503, "Service Unavailable")
			return []string{
				`_sip._udp.pbx.test. 60 IN SRV 10 0 ` + portOf(addr) + ` down.pbx.test.`,
				`down.pbx.test. 60 IN A 127.0.1.3`,
			}, func() bool { return invites() > 0 }
		}, rtpRange{6640, 6679}},
		{"TCP refused", func(t *testing.T) ([]string, func() bool) {
			// NAPTR prefers TCP, where nothing listens.
			return []string{
				`pbx.test. 60 IN NAPTR 10 50 "s" "SIP+D2T" "" _sip._tcp.pbx.test.`,
				`pbx.test. 60 IN NAPTR 20 50 "s" "SIP+D2U" "" _sip._udp.pbx.test.`,
				`_sip._tcp.pbx.test. 60 IN SRV 10 0 ` + fmt.Sprint(freeTCPPort(t)) + ` down.pbx.test.`,
				`down.pbx.test. 60 IN A 127.0.0.1`,
			}, nil
		}, rtpRange{6680, 6719}},
		{"silent", func(t *testing.T) ([]string, func() bool) {
			pc, err := net.ListenPacket("udp", "127.0.1.4:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
			got := make(chan struct{}, 1)
			go func() {
				buf := make([]byte, 4096)
				if _, _, err := pc.ReadFrom(buf); err == nil {
					got <- struct{}{}
				}
			}()
			return []string{
				`_sip._udp.pbx.test. 60 IN SRV 10 0 ` + portOf(pc.LocalAddr().String()) + ` down.pbx.test.`,
				`down.pbx.test. 60 IN A 127.0.1.4`,
			}, func() bool { return len(got) > 0 }
		}, rtpRange{6720, 6759}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			callee := newPhoneAt(t, "1002", "127.0.0.1:5060", "udp", "127.0.1.2")
			recs, reached := tc.first(t)
			recs = append(recs,
				`_sip._udp.pbx.test. 60 IN SRV 20 0 `+portOf(callee.Addr)+` up.pbx.test.`,
				`up.pbx.test. 60 IN A 127.0.1.2`)
			z := startDNSZone(t, recs...)
			p := startDNSParley(t, "sip:$1@pbx.test", z.Addr, tc.rng, false)
			start := time.Now()
			c := callRoute(t, p, "1234")
			c.mustAnswered(t)
			t.Logf("answered by the second target after %v", time.Since(start).Round(time.Millisecond))
			callee.mustEvent(evInvite)
			if reached != nil && !reached() {
				t.Error("the first target never got the INVITE")
			}
			if log := readFileOrErr(p.LogPath); !strings.Contains(log, "target failed; trying the next") {
				t.Errorf("parley's log does not say it failed over:\n%s", tail(p.LogPath, 30))
			}
			c.hangup(t)
		})
	}
}

// TestDNSRouteNoSuchName: a route to a name that does not exist gives the
// caller a 404 whose Warning names the name; a DNS server that does not
// answer gives a 503 within the resolver's bound, naming it too.
func TestDNSRouteNoSuchName(t *testing.T) {
	z := startDNSZone(t, `pbx.test. 60 IN A 127.0.1.2`)
	p := startDNSParley(t, "sip:$1@nowhere.test", z.Addr, rtpRange{6760, 6779}, false)
	c := callRoute(t, p, "1234")
	if c.status() != 404 {
		t.Fatalf("call to a name that does not exist got %d (%v), want 404", c.status(), c.codes())
	}
	if w := c.Final.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "nowhere.test") {
		t.Errorf("404 has Warning %v; want one naming nowhere.test", w)
	}

	z.mu.Lock()
	z.silent = true
	z.mu.Unlock()
	p2 := startDNSParley(t, "sip:$1@pbx.test", z.Addr, rtpRange{6780, 6799}, false)
	start := time.Now()
	c = callRoute(t, p2, "1234")
	took := time.Since(start)
	if c.status() != 503 {
		t.Fatalf("call with a silent DNS server got %d (%v), want 503", c.status(), c.codes())
	}
	if w := c.Final.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "pbx.test") {
		t.Errorf("503 has Warning %v; want one naming pbx.test", w)
	}
	if took > 8*time.Second {
		t.Errorf("a silent DNS server held the call %v", took)
	}
}

// TestDNSRouteAAAA: a name with only an AAAA record (::1) reaches a phone
// there, over parley's IPv6 listener.
func TestDNSRouteAAAA(t *testing.T) {
	callee := newPhoneAt(t, "1002", "127.0.0.1:5060", "udp", "::1")
	z := startDNSZone(t,
		`_sip._udp.six.test. 60 IN SRV 10 0 `+portOf(callee.Addr)+` host6.six.test.`,
		`host6.six.test. 60 IN AAAA ::1`,
	)
	p := startDNSParley(t, "sip:$1@six.test", z.Addr, rtpRange{6600, 6639}, true)
	c := callRoute(t, p, "1234")
	c.mustAnswered(t)
	in := callee.mustEvent(evInvite)
	if src := in.Req.Source(); !strings.HasPrefix(src, "[::1]:") {
		t.Errorf("the INVITE came from %s, want parley's ::1 socket", src)
	}
	c.hangup(t)
}

// TestDNSRouteReachesSippUAS: NAPTR → SRV → A leads to SIPp's built-in
// callee, which answers a phone's call.
func TestDNSRouteReachesSippUAS(t *testing.T) {
	needSipp(t)
	uas := startSippUAS(t)
	z := startDNSZone(t,
		`pbx.test. 60 IN NAPTR 10 50 "s" "SIP+D2U" "" _sip._udp.pbx.test.`,
		fmt.Sprintf(`_sip._udp.pbx.test. 60 IN SRV 10 0 %d sipp.pbx.test.`, uas.Port),
		`sipp.pbx.test. 60 IN A 127.0.0.1`,
	)
	p := startDNSParley(t, "sip:$1@pbx.test", z.Addr, rtpRange{6760, 6779}, false)
	c := callRoute(t, p, "1234")
	c.mustAnswered(t)
	c.hangup(t)
	p.waitMetric(t, 3*time.Second, atLeast(1), "parley_calls_total", "result", "answered")
}
