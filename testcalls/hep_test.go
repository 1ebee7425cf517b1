package testcalls

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HEP collector ports of these tests (this part's block is 32200-32299;
// the relay uses 32200-32299 too, but for RTP, over other sockets).
const (
	hepPortV4 = 32210
	hepPortV6 = 32211
)

// hepYAML is the capture section pointing parley at a collector on port.
func hepYAML(port int) string {
	return fmt.Sprintf("capture:\n  hep: 127.0.0.1:%d\n  hep_id: 2001\n  hep_password: s3cret\nnode:\n  id: hep-test\n", port)
}

// hepReceivers are the two real HEP receivers of a test: sngrep, which
// listens for HEP (-L) and writes what it decodes to a pcap file, and
// tshark, which captures the HEP packets on lo as they go to sngrep and
// decodes them (HEP with testdata/hep3.lua, since Wireshark 4.0 has no
// HEP dissector; the SIP inside with Wireshark's own).
type hepReceivers struct {
	port       int
	pcap       string // sngrep's output
	tsharkOut  string
	sngrep     *exec.Cmd
	tshark     *exec.Cmd
	sngrepDone chan error
	tsharkDone chan error
	stopped    bool
}

// The fields tshark prints per HEP packet, in this order (hepRow).
var hepFields = []string{"hep3.agent_id", "hep3.node_name", "hep3.auth_key", "hep3.ip_proto",
	"hep3.src", "hep3.src6", "hep3.sport", "hep3.dst", "hep3.dst6", "hep3.dport",
	"sip.Method", "sip.Status-Code", "sip.CSeq.method", "sip.Call-ID"}

// hepRow is one SIP message tshark decoded out of a HEP packet.
type hepRow struct {
	agent, node, auth string
	proto             int // 6 TCP, 17 UDP
	src, dst          string
	sport, dport      int
	method, status    string // method of a request, status of a response
	cseq, callID      string // CSeq method, Call-ID
}

func (r hepRow) String() string {
	what := r.method
	if what == "" {
		what = r.status + " " + r.cseq
	}
	return fmt.Sprintf("%s %s:%d->%s:%d ip_proto=%d call=%s", what, r.src, r.sport, r.dst, r.dport, r.proto, r.callID)
}

// startHEPReceivers starts sngrep listening for HEP on 127.0.0.1:port and
// tshark capturing what goes there, and waits until both are ready.
func startHEPReceivers(t *testing.T, port int) *hepReceivers {
	t.Helper()
	tsharkBin := needPackage(t, "tshark", "tshark")
	sngrepBin := needPackage(t, "sngrep", "sngrep")
	if os.Geteuid() != 0 {
		t.Skip("tshark captures on lo as root only here; run the HEP test as root")
	}
	if c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Fatalf("HEP port %d is taken: %v", port, err)
	} else {
		c.Close()
	}
	lua, err := filepath.Abs(filepath.Join("testdata", "hep3.lua"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := &hepReceivers{port: port, pcap: filepath.Join(dir, "sngrep.pcap"), tsharkOut: filepath.Join(dir, "tshark.txt"),
		sngrepDone: make(chan error, 1), tsharkDone: make(chan error, 1)}

	// sngrep without its interface (-N), quiet (-q), writing a pcap (-O).
	h.sngrep = exec.Command(sngrepBin, "-N", "-q", "-L", fmt.Sprintf("udp:127.0.0.1:%d", port), "-O", h.pcap)
	sngrepLog, err := os.Create(filepath.Join(dir, "sngrep.log"))
	if err != nil {
		t.Fatal(err)
	}
	h.sngrep.Stdout, h.sngrep.Stderr = sngrepLog, sngrepLog
	h.sngrep.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.sngrep.Start(); err != nil {
		t.Fatalf("start sngrep: %v", err)
	}
	go func() { h.sngrepDone <- h.sngrep.Wait(); sngrepLog.Close() }()
	t.Cleanup(func() { h.stop(t) })

	args := []string{"-i", "lo", "-l", "-n", "-X", "lua_script:" + lua, "-f", fmt.Sprintf("udp dst port %d", port),
		"-T", "fields", "-E", "separator=|", "-E", "occurrence=f"}
	for _, f := range hepFields {
		args = append(args, "-e", f)
	}
	h.tshark = exec.Command(tsharkBin, args...)
	out, err := os.Create(h.tsharkOut)
	if err != nil {
		t.Fatal(err)
	}
	h.tshark.Stdout = out
	stderr, err := h.tshark.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.tshark.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.tshark.Start(); err != nil {
		t.Fatalf("start tshark: %v", err)
	}
	ready := make(chan struct{})
	var errText strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errText.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Capturing on") {
				close(ready)
			}
		}
		h.tsharkDone <- h.tshark.Wait()
		out.Close()
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("tshark did not start capturing on lo")
	}
	// sngrep listens once its port is bound.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("sngrep is not listening on %d (log: %s)", port, readFileOrErr(filepath.Join(dir, "sngrep.log")))
		}
	}
	return h
}

// stop ends tshark (SIGINT, so it flushes) and sngrep (SIGTERM), and
// waits for both.
func (h *hepReceivers) stop(t *testing.T) {
	if h.stopped {
		return
	}
	h.stopped = true
	for _, p := range []struct {
		cmd  *exec.Cmd
		sig  syscall.Signal
		done chan error
	}{{h.tshark, syscall.SIGINT, h.tsharkDone}, {h.sngrep, syscall.SIGTERM, h.sngrepDone}} {
		if p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		_ = p.cmd.Process.Signal(p.sig)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop; killing it", p.cmd.Path)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// tsharkRows stops the receivers and returns what tshark decoded.
func (h *hepReceivers) tsharkRows(t *testing.T) []hepRow {
	t.Helper()
	h.stop(t)
	data, err := os.ReadFile(h.tsharkOut)
	if err != nil {
		t.Fatal(err)
	}
	var rows []hepRow
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != len(hepFields) {
			continue
		}
		r := hepRow{agent: f[0], node: f[1], auth: f[2], src: f[4] + f[5], dst: f[7] + f[8],
			method: f[10], status: f[11], cseq: f[12], callID: f[13]}
		r.proto, _ = strconv.Atoi(f[3])
		r.sport, _ = strconv.Atoi(f[6])
		r.dport, _ = strconv.Atoi(f[9])
		rows = append(rows, r)
	}
	return rows
}

// sngrepRows reads sngrep's pcap back with tshark: the SIP messages
// sngrep took out of the HEP packets, with the addresses it read in them.
func (h *hepReceivers) sngrepRows(t *testing.T) []hepRow {
	t.Helper()
	h.stop(t)
	out, err := exec.Command("tshark", "-r", h.pcap, "-n", "-T", "fields", "-E", "separator=|", "-E", "occurrence=f",
		"-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport", "-e", "tcp.srcport",
		"-e", "ip.dst", "-e", "ipv6.dst", "-e", "udp.dstport", "-e", "tcp.dstport",
		"-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq.method", "-e", "sip.Call-ID").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tshark -r %s: %v\n%s", h.pcap, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var rows []hepRow
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 12 || f[8]+f[9] == "" {
			continue
		}
		r := hepRow{src: f[0] + f[1], dst: f[4] + f[5], method: f[8], status: f[9], cseq: f[10], callID: f[11]}
		r.sport, _ = strconv.Atoi(f[2] + f[3])
		r.dport, _ = strconv.Atoi(f[6] + f[7])
		r.proto = 17
		if f[3] != "" {
			r.proto = 6
		}
		rows = append(rows, r)
	}
	return rows
}

// find returns the rows that match.
func findRows(rows []hepRow, match func(hepRow) bool) []hepRow {
	var out []hepRow
	for _, r := range rows {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// portNumber is the port of "host:port".
func portNumber(addr string) int { return atoi(portOf(addr)) }

// waitHEPSent waits until parley's count of messages sent to the
// collector stops moving, and returns it.
func waitHEPSent(t *testing.T, pl *parley) float64 {
	t.Helper()
	last := -1.0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		v, _ := pl.scrapeMetrics(t).get("parley_hep_messages_total", "outcome", "sent")
		if v == last && v > 0 {
			return v
		}
		last = v
	}
	t.Fatalf("parley_hep_messages_total{outcome=\"sent\"} did not settle (last %v)", last)
	return 0
}

// TestHEPExport: with capture.hep pointed at sngrep, a REGISTER over UDP
// and one over TCP and a call from the UDP phone to the TCP phone reach
// the collector as HEPv3, every message in both directions, as two real
// receivers decode them: tshark on lo, and sngrep itself.
func TestHEPExport(t *testing.T) {
	hep := startHEPReceivers(t, hepPortV4)
	pl := startParley(t, parleyConfig{Extra: rtpRange{32200, 32249}.yaml(nil, "") + hepYAML(hepPortV4)})
	parleyPort := portNumber(pl.SIPAddr)
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "tcp")
	alice.mustRegister()
	bob.mustRegister()

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := alice.call(ctx, "1002")
	c.mustAnswered(t)
	in := bob.mustEvent(evInvite)
	bob.mustEvent(evAck)
	c.hangup(t)
	bob.mustEvent(evBye)
	callerLeg, calleeLeg := c.Session.InviteRequest.CallID().Value(), in.Req.CallID().Value()

	sent := waitHEPSent(t, pl)
	m := pl.scrapeMetrics(t)
	if d, _ := m.get("parley_hep_messages_total", "outcome", "dropped"); d != 0 {
		t.Errorf("%v messages dropped at the capture queue", d)
	}
	if f, _ := m.get("parley_hep_messages_total", "outcome", "failed"); f != 0 {
		t.Errorf("%v messages failed to go to the collector", f)
	}
	rows := hep.tsharkRows(t)
	logRows := func(name string, rows []hepRow) {
		var b strings.Builder
		for _, r := range rows {
			b.WriteString("  " + r.String() + "\n")
		}
		t.Logf("%s decoded %d SIP messages out of HEP:\n%s", name, len(rows), b.String())
	}
	logRows("tshark", rows)
	if float64(len(rows)) != sent {
		t.Errorf("tshark saw %d HEP packets with SIP; parley counted %v sent", len(rows), sent)
	}
	for _, r := range rows {
		if r.agent != "2001" || r.node != "hep-test" || r.auth != "s3cret" {
			t.Errorf("%s: agent %q node %q auth key %q; want 2001, hep-test, s3cret", r, r.agent, r.node, r.auth)
			break
		}
	}
	alicePort := portNumber(alice.Addr)
	want := []struct {
		what  string
		match func(hepRow) bool
	}{
		{"alice's REGISTER over UDP", func(r hepRow) bool {
			return r.method == "REGISTER" && r.proto == 17 && r.sport == alicePort && r.dport == parleyPort && r.src == "127.0.0.1"
		}},
		{"the 401 to alice", func(r hepRow) bool { return r.status == "401" && r.proto == 17 && r.dport == alicePort }},
		{"the 200 to alice's REGISTER", func(r hepRow) bool {
			return r.status == "200" && r.cseq == "REGISTER" && r.proto == 17 && r.sport == parleyPort && r.dport == alicePort
		}},
		{"bob's REGISTER over TCP", func(r hepRow) bool { return r.method == "REGISTER" && r.proto == 6 && r.dport == parleyPort }},
		{"the 200 to bob's REGISTER over TCP", func(r hepRow) bool {
			return r.status == "200" && r.cseq == "REGISTER" && r.proto == 6 && r.sport == parleyPort
		}},
		{"alice's INVITE", func(r hepRow) bool { return r.method == "INVITE" && r.callID == callerLeg && r.sport == alicePort }},
		{"the 407 to it", func(r hepRow) bool { return r.status == "407" && r.callID == callerLeg }},
		{"100 Trying", func(r hepRow) bool { return r.status == "100" && r.callID == callerLeg }},
		{"parley's INVITE to bob over TCP", func(r hepRow) bool {
			return r.method == "INVITE" && r.callID == calleeLeg && r.proto == 6 && r.sport == parleyPort
		}},
		{"bob's 180", func(r hepRow) bool { return r.status == "180" && r.callID == calleeLeg && r.proto == 6 }},
		{"the 180 relayed to alice", func(r hepRow) bool { return r.status == "180" && r.callID == callerLeg && r.dport == alicePort }},
		{"bob's 200", func(r hepRow) bool { return r.status == "200" && r.cseq == "INVITE" && r.callID == calleeLeg }},
		{"the 200 to alice", func(r hepRow) bool { return r.status == "200" && r.cseq == "INVITE" && r.callID == callerLeg }},
		{"alice's ACK", func(r hepRow) bool { return r.method == "ACK" && r.callID == callerLeg && r.sport == alicePort }},
		{"parley's ACK to bob", func(r hepRow) bool { return r.method == "ACK" && r.callID == calleeLeg && r.sport == parleyPort }},
		{"alice's BYE", func(r hepRow) bool { return r.method == "BYE" && r.callID == callerLeg }},
		{"parley's BYE to bob", func(r hepRow) bool { return r.method == "BYE" && r.callID == calleeLeg && r.proto == 6 }},
		{"bob's 200 to the BYE", func(r hepRow) bool { return r.status == "200" && r.cseq == "BYE" && r.callID == calleeLeg }},
		{"the 200 to alice's BYE", func(r hepRow) bool {
			return r.status == "200" && r.cseq == "BYE" && r.callID == callerLeg && r.dport == alicePort
		}},
	}
	for _, w := range want {
		if len(findRows(rows, w.match)) == 0 {
			t.Errorf("tshark: no HEP packet carries %s", w.what)
		}
	}

	// sngrep decoded the same messages itself.
	srows := hep.sngrepRows(t)
	logRows("sngrep", srows)
	key := func(r hepRow) string { return r.callID + " " + r.cseq + " " + r.method + r.status }
	tk, sk := make([]string, 0, len(rows)), make([]string, 0, len(srows))
	for _, r := range rows {
		tk = append(tk, key(r))
	}
	for _, r := range srows {
		sk = append(sk, key(r))
	}
	slices.Sort(tk)
	slices.Sort(sk)
	if !slices.Equal(tk, sk) {
		t.Errorf("sngrep decoded other messages than tshark:\n sngrep %q\n tshark %q", sk, tk)
	}
	if len(findRows(srows, func(r hepRow) bool {
		return r.method == "REGISTER" && r.src == "127.0.0.1" && r.sport == alicePort && r.dport == parleyPort
	})) == 0 {
		t.Errorf("sngrep: alice's REGISTER not seen from 127.0.0.1:%d to port %d", alicePort, parleyPort)
	}
}

// TestHEPExportIPv6: a phone on ::1 registers and is called; its
// messages reach the collector (over IPv4) as HEP with IPv6 addresses.
func TestHEPExportIPv6(t *testing.T) {
	hep := startHEPReceivers(t, hepPortV6)
	pl, v4, v6 := startDualStackRTP(t, rtpRange{32250, 32299}.yaml(nil, "")+hepYAML(hepPortV6))
	callee := newPhoneAt(t, "1002", v6, "udp", "::1")
	callee.mustRegister()
	caller := newPhone(t, "1001", v4, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := caller.call(ctx, "1002")
	c.mustAnswered(t)
	in := callee.mustEvent(evInvite)
	c.hangup(t)
	callee.mustEvent(evBye)
	waitHEPSent(t, pl)

	calleePort, parleyPort := portNumber(callee.Addr), portNumber(v6)
	rows := hep.tsharkRows(t)
	for _, w := range []struct {
		what  string
		match func(hepRow) bool
	}{
		{"the REGISTER from ::1", func(r hepRow) bool {
			return r.method == "REGISTER" && r.src == "::1" && r.dst == "::1" && r.sport == calleePort && r.dport == parleyPort
		}},
		{"the INVITE to ::1", func(r hepRow) bool {
			return r.method == "INVITE" && r.callID == in.Req.CallID().Value() && r.src == "::1" && r.dport == calleePort
		}},
		{"the caller's INVITE from 127.0.0.1", func(r hepRow) bool { return r.method == "INVITE" && r.src == "127.0.0.1" }},
	} {
		if len(findRows(rows, w.match)) == 0 {
			t.Errorf("tshark: no HEP packet carries %s; saw %v", w.what, rows)
		}
	}
	// sngrep 1.6 decodes the IPv6 packets, but its pcap writer gives
	// every packet an IPv4 header, where an IPv6 address becomes 0.0.0.0;
	// the ports and the messages are what it read.
	srows := hep.sngrepRows(t)
	if len(findRows(srows, func(r hepRow) bool {
		return r.method == "REGISTER" && r.sport == calleePort && r.dport == parleyPort
	})) == 0 {
		t.Errorf("sngrep: no REGISTER from port %d to %d; saw %v", calleePort, parleyPort, srows)
	}
	if len(srows) != len(rows) {
		t.Errorf("sngrep decoded %d messages, tshark %d", len(srows), len(rows))
	}
}
