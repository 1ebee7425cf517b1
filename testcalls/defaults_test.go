package testcalls

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
)

// Part 8's defaults that just work: rtp.address "" (the relay binds every
// address and tells each phone the local address facing it), the relay
// range 10000-19999 and durations that accept 0. The relay port blocks of
// these tests (see rtpRange) split 29200-29299.
var (
	rangeEveryAddress = rtpRange{29200, 29249}
	rangeTimeoutZero  = rtpRange{29250, 29273}
	rangeTimeoutOne   = rtpRange{29274, 29297}
)

// everyAddressYAML is the rtp section of a relay bound to every address:
// rtp.address "" as the embedded default has it, with block r's ports and
// the timeout given (empty keeps the default).
func everyAddressYAML(r rtpRange, timeout string) string {
	y := fmt.Sprintf("rtp:\n  address: \"\"\n  port_min: %d\n  port_max: %d\n", r.Min, r.Max)
	if timeout != "" {
		y += "  timeout: " + timeout + "\n"
	}
	return y
}

// checkOrigin wants the o= line of body, an SDP parley sent, to name addr,
// as its c= line does.
func checkOrigin(t *testing.T, what string, body []byte, addr netip.Addr) {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		t.Fatalf("%s: SDP does not parse: %v\n%s", what, err, body)
	}
	if sd.Origin.UnicastAddress != addr.String() {
		t.Errorf("%s: o= names %s, want %v, the address facing the phone:\n%s", what, sd.Origin.UnicastAddress, addr, body)
	}
}

// TestDefaultsRelayEveryAddress: with rtp.address "" both phones, on
// 127.0.0.1, are told 127.0.0.1 (the local address facing them) on c= and
// o=, RTP flows both ways through the relay, and RTP sent to the relay's
// port on another local address (127.0.0.2) is relayed too: the relay
// binds every address. The echo service answers with the address facing
// the caller as well.
func TestDefaultsRelayEveryAddress(t *testing.T) {
	t.Parallel()
	r := rangeEveryAddress
	pl := startParley(t, parleyConfig{Extra: everyAddressYAML(r, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)
	facing := netip.MustParseAddr("127.0.0.1")

	mc := mustMediaCall(t, alice, bob)
	checkRelayed(t, "answer to the caller", mc.CallerSees, r.Min, r.Max, bSock.Addr())
	checkRelayed(t, "offer to the callee", mc.CalleeSees, r.Min, r.Max, aSock.Addr())
	checkOrigin(t, "answer to the caller", mc.Out.Final.Body(), facing)
	checkOrigin(t, "offer to the callee", mc.In.Req.Body(), facing)
	if t.Failed() {
		t.FailNow()
	}

	a := rtpStream{Tag: 0xA1, SSRC: 0x1001AAAA, PayloadType: firstPT(t, mc.CallerSees), Count: 50, Interval: 5 * time.Millisecond}
	b := rtpStream{Tag: 0xB2, SSRC: 0x1002BBBB, PayloadType: firstPT(t, mc.CalleeSees), Count: 50, Interval: 5 * time.Millisecond}
	aGot, bGot := exchange(t, aSock, bSock, mc, a, b)
	checkStream(t, "caller → callee", bGot, a, mc.CalleeSees.Addr)
	checkStream(t, "callee → caller", aGot, b, mc.CallerSees.Addr)

	// The same ports on 127.0.0.2, an address no SDP named: the relay
	// binds every address, so this reaches it too. The packets leave
	// towards each phone from the address its SDP named.
	other := netip.MustParseAddr("127.0.0.2")
	toOther := func(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(other, ap.Port()) }
	a.Tag, b.Tag = 0xA3, 0xB4
	aOther := &mediaCall{CallerSees: sdpAudio{Addr: toOther(mc.CallerSees.Addr)}, CalleeSees: sdpAudio{Addr: toOther(mc.CalleeSees.Addr)}}
	aGot, bGot = exchange(t, aSock, bSock, aOther, a, b)
	checkStream(t, "caller → callee, sent to 127.0.0.2", bGot, a, mc.CalleeSees.Addr)
	checkStream(t, "callee → caller, sent to 127.0.0.2", aGot, b, mc.CallerSees.Addr)

	mc.Out.hangup(t)
	bob.mustEvent(evBye)

	t.Run("echo service", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := alice.call(ctx, "600")
		c.mustAnswered(t)
		defer c.hangup(t)
		sees := parseAudio(t, "echo's answer", c.Final.Body())
		if sees.Addr.Addr() != facing {
			t.Errorf("echo's answer names %v, want %v, the address facing the caller", sees.Addr, facing)
		}
		checkOrigin(t, "echo's answer", c.Final.Body(), facing)
		s := rtpStream{Tag: 0xE5, SSRC: 0x1001EEEE, PayloadType: firstPT(t, sees), Count: 10, Interval: 5 * time.Millisecond}
		if err := aSock.send(sees.Addr, s); err != nil {
			t.Fatal(err)
		}
		if got, err := aSock.receive(s.Count, 2*time.Second); err != nil {
			t.Errorf("echo: %v (got %d)", err, len(got))
		}
	})
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}

// TestDefaultsTimeoutZero: rtp.timeout 0 is accepted and means never: a
// silent call stays up while, on a parley with rtp.timeout 1s, the same
// silent call is hung up with BYE on both legs within the same few seconds.
func TestDefaultsTimeoutZero(t *testing.T) {
	t.Parallel()
	const window = 4 * time.Second
	never := startParley(t, parleyConfig{Extra: everyAddressYAML(rangeTimeoutZero, "0")})
	soon := startParley(t, parleyConfig{Extra: everyAddressYAML(rangeTimeoutOne, "1s")})

	type rig struct{ alice, bob *phone }
	rigs := map[string]rig{}
	for name, pl := range map[string]*parley{"timeout 0": never, "timeout 1s": soon} {
		alice := newPhone(t, "1001", pl.SIPAddr, "udp")
		bob := newPhone(t, "1002", pl.SIPAddr, "udp")
		alice.mustRegister()
		bob.mustRegister()
		alice.useRTPSocket(newRTPSocket(t))
		bob.useRTPSocket(newRTPSocket(t))
		rigs[name] = rig{alice, bob}
	}
	zero := mustMediaCall(t, rigs["timeout 0"].alice, rigs["timeout 0"].bob)
	start := time.Now()
	mustMediaCall(t, rigs["timeout 1s"].alice, rigs["timeout 1s"].bob)

	// The 1s call ends within the window: a media timeout would show.
	waitByes(t, window, rigs["timeout 1s"].alice, rigs["timeout 1s"].bob)
	// The timeout-0 call, silent as long, gets no BYE in the window.
	rigs["timeout 0"].alice.noEvent(evBye, window-time.Since(start))
	rigs["timeout 0"].bob.noEvent(evBye, 10*time.Millisecond)
	if got, _ := never.scrapeMetrics(t).get("parley_calls"); got != 1 {
		t.Errorf("parley with rtp.timeout 0 holds %v calls after %v of silence, want 1", got, time.Since(start).Round(time.Second))
	}
	zero.Out.hangup(t)
	rigs["timeout 0"].bob.mustEvent(evBye)
}

// TestDefaultConfigJustWorks: the embedded default passes -check-config
// and says rtp.address "" and ports 10000-19999. Started with it (only
// the listeners and the store moved, and sip.public_address set so that
// phones reach it beyond this host), parley's welcome no longer warns
// that only local phones get audio; with rtp.address 127.0.0.1 it does.
func TestDefaultConfigJustWorks(t *testing.T) {
	t.Parallel()
	needParley(t)
	out, err := exec.Command(parleyBin, "-check-config").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Fatalf("parley -check-config on the embedded default: %v\n%s", err, out)
	}
	out, err = exec.Command(parleyBin, "-print-default-config").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  address: \"\"", "  port_min: 10000", "  port_max: 19999"} {
		if !strings.Contains(string(out), want+" ") && !strings.Contains(string(out), want+"\n") {
			t.Errorf("embedded default has no %q in its rtp section:\n%s", want, out)
		}
	}

	const note = "Note: rtp.address is"
	for _, tc := range []struct {
		rtp   string
		warns bool
	}{
		{"", false},
		{"rtp: {address: 127.0.0.1}\n", true},
	} {
		t.Run(fmt.Sprintf("warns=%t", tc.warns), func(t *testing.T) {
			p := startWithDefaults(t, tc.rtp)
			log := p.stopAndLog(t)
			if !strings.Contains(log, "parley is running") {
				t.Fatalf("no welcome in parley's output:\n%s", log)
			}
			if got := strings.Contains(log, note); got != tc.warns {
				t.Errorf("welcome warns about rtp.address: %t, want %t:\n%s", got, tc.warns, log)
			}
		})
	}
}

// startWithDefaults runs parley on the embedded default config with only
// its listeners on free loopback ports, the store in memory, and
// sip.public_address 192.0.2.10, plus extra (top-level sections).
func startWithDefaults(t *testing.T, extra string) *parley {
	t.Helper()
	dir := t.TempDir()
	sipPort, adminPort := freeSIPPort(t), freeTCPPort(t)
	p := &parley{
		SIPAddr:    fmt.Sprintf("127.0.0.1:%d", sipPort),
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", adminPort),
		ConfigPath: filepath.Join(dir, "parley.yaml"),
		LogPath:    filepath.Join(dir, "parley.log"),
		exited:     make(chan struct{}),
	}
	writeFile(t, p.ConfigPath, fmt.Sprintf("sip:\n  listen: [udp://%s]\n  public_address: 192.0.2.10\n"+
		"admin:\n  listen: %s\nstore:\n  path: \"\"\n%s", p.SIPAddr, p.AdminAddr, extra))
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
	p.waitLog(t, "parley ready", 5*time.Second)
	return p
}
