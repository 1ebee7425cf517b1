package testcalls

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startDualStack runs parley listening on one port over both 127.0.0.1
// and ::1 (UDP and TCP), its relay on ports rng.
func startDualStack(t *testing.T, rng rtpRange) (p *parley, v4, v6 string) {
	t.Helper()
	return startDualStackRTP(t, rng.yaml(nil, ""))
}

// startDualStackRTP is startDualStack with rtpYAML as its rtp section.
func startDualStackRTP(t *testing.T, rtpYAML string) (p *parley, v4, v6 string) {
	t.Helper()
	needParley(t)
	dir := t.TempDir()
	port := freeSIPPort(t)
	if l, err := net.ListenPacket("udp6", fmt.Sprintf("[::1]:%d", port)); err != nil {
		t.Fatalf("::1 is needed for the IPv6 test: %v", err)
	} else {
		l.Close()
	}
	adminPort := freeTCPPort(t)
	v4, v6 = fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)
	p = &parley{
		SIPAddr:    v4,
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", adminPort),
		ConfigPath: filepath.Join(dir, "parley.yaml"),
		LogPath:    filepath.Join(dir, "parley.log"),
		exited:     make(chan struct{}),
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sip:\n  listen: ['udp://%s', 'tcp://%s', 'udp://%s', 'tcp://%s']\n  realm: parley.lab\n", v4, v4, v6, v6)
	fmt.Fprintf(&b, "admin:\n  listen: %s\nstore:\n  path: \"\"\nusers:\n", p.AdminAddr)
	for _, u := range []string{"1001", "1002", "1003"} {
		fmt.Fprintf(&b, "  - {username: %s, password: %s}\n", yamlQuote(u), yamlQuote(testUsers[u]))
	}
	b.WriteString("registrar: {qualify: 0s}\n")
	b.WriteString(rtpYAML)
	writeFile(t, p.ConfigPath, b.String())
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
	return p, v4, v6
}

// TestIPv6Signalling: a phone on ::1 registers over IPv6 and is called by
// a phone on 127.0.0.1. parley sends the INVITE from its IPv6 socket, with
// an IPv6 Via and Contact (part 8 found it all leaving through the IPv4
// socket: "write udp4 … non-IPv4 address", and a 503), and the BYEs both
// ways reach their phones. Media over IPv6 is not covered here.
func TestIPv6Signalling(t *testing.T) {
	p, v4, v6 := startDualStack(t, rtpRange{29800, 29899})
	callee := newPhoneAt(t, "1002", v6, "udp", "::1")
	callee.mustRegister()
	caller := newPhone(t, "1001", v4, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()

	c := caller.call(ctx, "1002")
	c.mustAnswered(t)
	in := callee.mustEvent(evInvite)
	if src := in.Req.Source(); src != v6 {
		t.Errorf("the INVITE to the IPv6 phone came from %s, want parley's IPv6 socket %s", src, v6)
	}
	if via := in.Req.Via(); via == nil || via.Host != "[::1]" && via.Host != "::1" {
		t.Errorf("the INVITE's Via names %v, want ::1", via)
	}
	if ct := in.Req.Contact(); ct == nil || !strings.Contains(ct.Address.Host, "::1") {
		t.Errorf("the INVITE's Contact is %v, want parley at ::1", ct)
	}
	// The callee hangs up over IPv6; the caller gets its BYE over IPv4.
	select {
	case <-in.Call.Answered:
	case <-time.After(callTimeout):
		t.Fatal("callee: the 200 was never ACKed")
	}
	in.Call.hangup(t)
	if _, err := caller.waitEvent(evBye, 3*time.Second); err != nil {
		t.Fatalf("caller: %v", err)
	}

	// And the other way round: the IPv6 phone calls the IPv4 one.
	caller.mustRegister()
	c = callee.call(ctx, "1001")
	c.mustAnswered(t)
	c.hangup(t)
	if _, err := caller.waitEvent(evBye, 3*time.Second); err != nil {
		t.Fatalf("IPv4 callee of the IPv6 caller: %v", err)
	}
	p.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// TestIPv6Media: the relay bridges an IPv4 phone and an IPv6 phone. With
// rtp.address and rtp.address6 left empty, the callee on ::1 is offered
// the relay at "IN IP6 ::1" and the caller on 127.0.0.1 answered with
// "IN IP4 127.0.0.1", and RTP flows both ways between the two families.
func TestIPv6Media(t *testing.T) {
	_, v4, v6 := startDualStackRTP(t, "rtp: {address: \"\", port_min: 29900, port_max: 29999}\n")
	callee := newPhoneAt(t, "1002", v6, "udp", "::1")
	callee.mustRegister()
	caller := newPhone(t, "1001", v4, "udp")
	cf, ef := newFlow(t), newFlowAt(t, net.IPv6loopback)
	cp, ep := cf.port(), ef.port()
	caller.setSDP(func(offer []byte) []byte { return mediaOffer("127.0.0.1", cp, "0", "8", "101") })
	callee.setSDP(func(offer []byte) []byte { return mediaAnswer(offer, "::1", ep) })
	mc := mustMediaCall(t, caller, callee)
	if a := mc.CalleeSees.Addr.Addr(); a != netip.IPv6Loopback() {
		t.Errorf("the IPv6 callee is offered media at %v, want the relay at ::1", a)
	}
	if a := mc.CallerSees.Addr.Addr(); a != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("the IPv4 caller is answered with media at %v, want the relay at 127.0.0.1", a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	cf.setDst(mc.CallerSees.Addr)
	ef.setDst(mc.CalleeSees.Addr)
	cf.run(ctx, &wg, 1)
	ef.run(ctx, &wg, 2)
	calls := []*recoveryCall{{mc: mc, caller: cf, callee: ef}}
	waitMedia(t, calls, time.Now(), 3*time.Second)
	mc.Out.hangup(t)
	if _, err := callee.waitEvent(evBye, 3*time.Second); err != nil {
		t.Errorf("callee: %v", err)
	}
}
