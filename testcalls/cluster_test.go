package testcalls

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// clusterHeartbeat is node.heartbeat in the cluster tests: a node silent
// for three of them (1.5 s) is dead.
const clusterHeartbeat = 500 * time.Millisecond

// startNode runs one parley node of a cluster on its own loopback address
// ip (127.0.0.2, …) with relay ports rng, sharing the Redis at redisURL.
// The cluster's nodes trust each other (sip.trusted holds their
// addresses), as the README says a cluster must be set up.
func startNode(t *testing.T, id, ip, redisURL string, rng rtpRange, peers ...string) *parley {
	t.Helper()
	return startNodeExtra(t, id, ip, redisURL, rng, "", peers...)
}

// startNodeExtra is startNode with extraYAML added to the node's config:
// top-level sections startNode does not write (sip, admin, store, node,
// users, routes, registrar, rtp, sessions and log are its own), e.g.
// security.
func startNodeExtra(t *testing.T, id, ip, redisURL string, rng rtpRange, extraYAML string, peers ...string) *parley {
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
	fmt.Fprintf(&b, "sip:\n  listen: [udp://%s, tcp://%s]\n  realm: parley.lab\n  trusted: [", p.SIPAddr, p.SIPAddr)
	for i, peer := range peers {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(yamlQuote(peer + "/32"))
	}
	b.WriteString("]\n")
	fmt.Fprintf(&b, "admin:\n  listen: %s\n", p.AdminAddr)
	fmt.Fprintf(&b, "store:\n  path: %s\n  redis: %s\n", yamlQuote(filepath.Join(dir, "data")), yamlQuote(redisURL))
	fmt.Fprintf(&b, "node: {id: %s, heartbeat: %v}\n", id, clusterHeartbeat)
	b.WriteString("users:\n")
	for _, u := range []string{"1001", "1002", "1003"} {
		fmt.Fprintf(&b, "  - {username: %s, password: %s}\n", yamlQuote(u), yamlQuote(testUsers[u]))
	}
	b.WriteString("routes: []\nregistrar: {min_expires: 60, max_expires: 3600, qualify: 0s}\n")
	fmt.Fprintf(&b, "rtp: {address: %s, port_min: %d, port_max: %d}\n", ip, rng.Min, rng.Max)
	b.WriteString("sessions: {max_calls: 0, max_calls_per_user: 0}\nlog: {level: debug}\n")
	b.WriteString(extraYAML)
	writeFile(t, p.ConfigPath, b.String())
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
	return p
}

// freePortsOn returns a UDP+TCP port and a TCP port free on ip, below the
// ephemeral range.
func freePortsOn(t *testing.T, ip string) (sip, admin int) {
	t.Helper()
	var got []int
	for port := 23800; port < 23999 && len(got) < 2; port++ {
		addr := net.JoinHostPort(ip, fmt.Sprint(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			l.Close()
			continue
		}
		l.Close()
		c.Close()
		got = append(got, port)
	}
	if len(got) < 2 {
		t.Fatalf("no two free ports on %s in 23800-23999", ip)
	}
	return got[0], got[1]
}

// apiNode is one element of GET /api/nodes.
type apiNode struct {
	ID    string `json:"id"`
	SIP   string `json:"sip"`
	Alive bool   `json:"alive"`
	Calls int    `json:"calls"`
}

// waitNodeSees polls p's registrations until user has a binding.
func waitNodeSees(t *testing.T, p *parley, user string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, ok := registrationOf(p.apiRegistrations(t), user, ""); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s does not see %s's registration within %v", p.SIPAddr, user, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterCallThroughNode: a phone registers over UDP through node A; a
// call for it entering node B finds the registration in the shared Redis
// and goes through A, which holds the phone's flow (behind NAT the only way
// in). Audio flows both ways, and the hangup ends the call on both nodes.
func TestClusterCallThroughNode(t *testing.T) {
	rs := startRedis(t)
	a := startNode(t, "node-a", "127.0.0.4", rs.URL, rtpRange{28400, 28499}, "127.0.0.5")
	b := startNode(t, "node-b", "127.0.0.5", rs.URL, rtpRange{28500, 28599}, "127.0.0.4")
	callee := newPhone(t, "1002", a.SIPAddr, "udp")
	callee.mustRegister()
	waitNodeSees(t, b, "1002", 3*time.Second)
	caller := newPhone(t, "1001", b.SIPAddr, "udp")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	calls := placeRecoveryCalls(t, ctx, &wg, caller, callee, 1)
	in := calls[0].mc.In.Req
	if src := in.Source(); !strings.HasPrefix(src, "127.0.0.4:") {
		t.Errorf("the callee's INVITE came from %s, want node A (127.0.0.4), which holds its flow", src)
	}
	if got := calls[0].mc.CalleeSees.Addr.Addr(); got != netip.MustParseAddr("127.0.0.4") {
		t.Errorf("the callee's media goes to %v, want node A's relay", got)
	}
	if got := calls[0].mc.CallerSees.Addr.Addr(); got != netip.MustParseAddr("127.0.0.5") {
		t.Errorf("the caller's media goes to %v, want node B's relay", got)
	}
	waitMedia(t, calls, time.Now(), 3*time.Second)
	if n := len(a.apiCalls(t)); n != 1 {
		t.Errorf("node A holds %d calls, want 1 (B's call through it)", n)
	}
	// The operator's view: both nodes alive, each with its heartbeat.
	deadline := time.Now().Add(3 * time.Second)
	for {
		nodes := nodesJSON(t, b)
		if len(nodes) == 2 && nodes[0].ID == "node-a" && nodes[0].Alive && nodes[1].ID == "node-b" && nodes[1].Alive &&
			nodes[0].SIP == a.SIPAddr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/nodes on B: %+v; want node-a (at %s) and node-b, both alive", nodes, a.SIPAddr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And from a terminal: parley nodes against B's admin API.
	out, err := exec.Command(parleyBin, "nodes", "-admin", b.AdminAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("parley nodes: %v\n%s", err, out)
	}
	rows := table(string(out))
	if len(rows) != 3 || rows[1][0] != "node-a" || rows[1][1] != "alive" || rows[1][2] != a.SIPAddr ||
		rows[2][0] != "node-b" || rows[2][1] != "alive" {
		t.Errorf("parley nodes printed\n%s\nwant node-a and node-b, both alive, with their SIP addresses", out)
	}
	hangupAll(t, b, callee, calls)
	if n := len(a.apiCalls(t)); n != 0 {
		t.Errorf("node A still holds %d calls after the hangup", n)
	}
}

// TestClusterFailover is part 7's failover test: 50 calls with RTP up on
// node A, kill -9 A; within 5 s of its heartbeat running out node B has
// claimed the calls, re-INVITEd both legs of every one with SDP of its own
// relay, and audio flows through B. Then each call ends from a phone.
func TestClusterFailover(t *testing.T) {
	const n = 50
	rs := startRedis(t)
	a := startNode(t, "node-a", "127.0.0.2", rs.URL, rtpRange{20000, 20499}, "127.0.0.3")
	b := startNode(t, "node-b", "127.0.0.3", rs.URL, rtpRange{20500, 20999}, "127.0.0.2")
	callee := newPhone(t, "1002", a.SIPAddr, "udp")
	callee.mustRegister()
	caller := newPhone(t, "1001", a.SIPAddr, "udp")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	calls := placeRecoveryCalls(t, ctx, &wg, caller, callee, n)
	waitMedia(t, calls, time.Now(), 3*time.Second)

	// Each phone answers the re-INVITE of its dialog with its own media
	// address and sends its RTP where the new offer says from then on.
	var mu sync.Mutex
	flows := map[string]*flow{}
	reinvited := map[string]time.Time{}
	offered := map[string]netip.AddrPort{}
	for _, rc := range calls {
		flows["caller "+rc.mc.Out.Session.InviteRequest.CallID().Value()] = rc.caller
		flows["callee "+rc.mc.In.Req.CallID().Value()] = rc.callee
	}
	hook := func(side string) func(req *sip.Request) []byte {
		return func(req *sip.Request) []byte {
			key := side + " " + req.CallID().Value()
			mu.Lock()
			f := flows[key]
			mu.Unlock()
			if f == nil {
				t.Errorf("%s phone: re-INVITE for a dialog it does not hold: %s", side, key)
				return nil
			}
			a := parseAudio(t, "re-INVITE to the "+side, req.Body())
			f.setDst(a.Addr)
			mu.Lock()
			reinvited[key], offered[key] = time.Now(), a.Addr
			mu.Unlock()
			return mediaAnswer(req.Body(), "127.0.0.1", f.port())
		}
	}
	caller.mu.Lock()
	caller.reinvite = hook("caller")
	caller.mu.Unlock()
	callee.mu.Lock()
	callee.reinvite = hook("callee")
	callee.mu.Unlock()

	killed := time.Now()
	a.kill9(t)
	expiry := killed.Add(3 * clusterHeartbeat) // at the latest
	deadline := expiry.Add(5 * time.Second)
	for {
		mu.Lock()
		got := len(reinvited)
		mu.Unlock()
		if got == 2*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d legs re-INVITEd within 5 s of node A's heartbeat running out; node B's log:\n%s", got, 2*n, tail(b.LogPath, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	var last time.Time
	var firstRe time.Time
	for key, at := range reinvited {
		if at.After(last) {
			last = at
		}
		if firstRe.IsZero() || at.Before(firstRe) {
			firstRe = at
		}
		if offered[key].Addr() != netip.MustParseAddr("127.0.0.3") {
			t.Errorf("%s: re-INVITE offers media at %v, want node B's relay 127.0.0.3", key, offered[key])
		}
	}
	mu.Unlock()
	// Audio through B on every flow after its re-INVITE.
	waitMedia(t, calls, last, 2*time.Second)
	gaps := gapReport{Ready: firstRe.Sub(killed), WorstAfterReady: last.Sub(firstRe)}
	for _, rc := range calls {
		for _, f := range []*flow{rc.caller, rc.callee} {
			first, _ := f.firstAfter(killed)
			lastBefore, _ := f.lastBefore(killed)
			gaps.Gaps = append(gaps.Gaps, first.Sub(lastBefore))
		}
	}
	slices.Sort(gaps.Gaps)
	t.Logf("failover of %d calls: node A killed (its heartbeat ran out %v to %v later); first re-INVITE from B %v after the kill, last %v after it; audio gap per flow median %v, worst %v",
		n, 3*clusterHeartbeat-clusterHeartbeat, 3*clusterHeartbeat, firstRe.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond),
		gaps.Gaps[len(gaps.Gaps)/2].Round(time.Millisecond), gaps.Gaps[len(gaps.Gaps)-1].Round(time.Millisecond))
	for _, line := range strings.Split(readFileOrErr(b.LogPath), "\n") {
		if strings.Contains(line, "adopted the calls") {
			t.Logf("node B: %s", line)
		}
	}
	if got := len(b.apiCalls(t)); got != n {
		t.Errorf("node B holds %d calls after the failover, want %d", got, n)
	}
	var nodes []apiNode
	body := b.apiJSON(t, "/api/nodes", &nodes)
	if len(nodes) != 1 || nodes[0].ID != "node-b" || !nodes[0].Alive {
		t.Errorf("/api/nodes on B after A's calls were adopted: %s; want node-b alone, alive", body)
	}
	hangupAll(t, b, callee, calls)
}

// nodesJSON fetches /api/nodes of p.
func nodesJSON(t *testing.T, p *parley) []apiNode {
	t.Helper()
	var nodes []apiNode
	code, body := p.httpDo(t, http.MethodGet, "/api/nodes")
	if code != http.StatusOK {
		t.Fatalf("GET /api/nodes: %d", code)
	}
	if err := json.Unmarshal(body, &nodes); err != nil {
		t.Fatalf("GET /api/nodes: %v", err)
	}
	return nodes
}

// table splits a CLI listing into rows of columns: columns are separated
// by runs of two or more spaces (a date and time keep their one space).
func table(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var cols []string
		for _, f := range strings.Split(line, "  ") {
			if f = strings.TrimSpace(f); f != "" {
				cols = append(cols, f)
			}
		}
		rows = append(rows, cols)
	}
	return rows
}
