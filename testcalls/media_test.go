package testcalls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Each media test has its own block of relay ports (see rtpRange).
var (
	rangeBothWays  = rtpRange{21000, 21099}
	rangeCodecs    = rangeOf(21100)
	rangeNAT       = rangeOf(21200)
	rangeTimeout   = rangeOf(21300)
	rangeReuse     = rtpRange{21400, 21419} // 10 RTP/RTCP pairs: 5 calls at once
	rangeExhausted = rtpRange{21500, 21503} // 2 pairs: exactly one call
	rangeSipp      = rangeOf(21600)
)

func rangeOf(min int) rtpRange { return rtpRange{min, min + 99} }

// packetsPerSide is how many RTP packets each phone sends in a media test.
const packetsPerSide = 100

// exchange has both phones send their stream at once, each to the address
// its SDP named, and returns what each received.
func exchange(t *testing.T, aSock, bSock *rtpSocket, mc *mediaCall, a, b rtpStream) (aGot, bGot []rtpReceived) {
	t.Helper()
	var wg sync.WaitGroup
	var aErr, bErr, aSend, bSend error
	wg.Add(4)
	go func() { defer wg.Done(); aGot, aErr = aSock.receive(b.Count, 2*time.Second) }()
	go func() { defer wg.Done(); bGot, bErr = bSock.receive(a.Count, 2*time.Second) }()
	go func() { defer wg.Done(); aSend = aSock.send(mc.CallerSees.Addr, a) }()
	go func() { defer wg.Done(); bSend = bSock.send(mc.CalleeSees.Addr, b) }()
	wg.Wait()
	for _, err := range []error{aSend, bSend} {
		if err != nil {
			t.Errorf("sending RTP: %v", err)
		}
	}
	if aErr != nil {
		t.Errorf("caller receiving: %v", aErr)
	}
	if bErr != nil {
		t.Errorf("callee receiving: %v", bErr)
	}
	return aGot, bGot
}

// TestMediaRelayBothWays: 1001 calls 1002; each phone is told to send its
// RTP to parley (rtp.address and a port from the range, not the other
// phone), and 100 packets each way arrive at the other phone in order,
// intact, and from the address that phone's SDP named.
func TestMediaRelayBothWays(t *testing.T) {
	r := rangeBothWays
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)

	mc := mustMediaCall(t, alice, bob)
	mediaDebug(t, "caller sends to %v, callee sends to %v", mc.CallerSees.Addr, mc.CalleeSees.Addr)
	checkRelayed(t, "answer to the caller", mc.CallerSees, r.Min, r.Max, bSock.Addr())
	checkRelayed(t, "offer to the callee", mc.CalleeSees, r.Min, r.Max, aSock.Addr())
	if mc.CallerSees.Addr == mc.CalleeSees.Addr {
		t.Errorf("both legs got the same relay address %v; each leg needs its own port", mc.CallerSees.Addr)
	}
	if t.Failed() {
		t.FailNow()
	}
	inUse := pl.waitMetric(t, 3*time.Second, atLeast(2), "parley_rtp_ports_in_use")
	mediaDebug(t, "parley_rtp_ports_in_use during the call: %v", inUse)

	a := rtpStream{Tag: 0xA1, SSRC: 0x1001AAAA, PayloadType: firstPT(t, mc.CallerSees), Count: packetsPerSide, Interval: 10 * time.Millisecond}
	b := rtpStream{Tag: 0xB2, SSRC: 0x1002BBBB, PayloadType: firstPT(t, mc.CalleeSees), Count: packetsPerSide, Interval: 10 * time.Millisecond}
	aGot, bGot := exchange(t, aSock, bSock, mc, a, b)
	checkStream(t, "caller → callee", bGot, a, mc.CalleeSees.Addr)
	checkStream(t, "callee → caller", aGot, b, mc.CallerSees.Addr)

	pl.waitMetric(t, 3*time.Second, atLeast(2*packetsPerSide), "parley_rtp_packets_total")
	pl.waitMetric(t, 3*time.Second, atLeast(2*packetsPerSide*(12+rtpPayloadSize)), "parley_rtp_bytes_total")
	mc.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
	// Loopback loses nothing; the relay must not count loss that was not.
	pl.waitMetric(t, time.Second, equals(0), "parley_rtp_packets_lost_total")
}

// TestMediaCodecs: parley offers the callee the caller's codecs that
// rtp.codecs allows, in the caller's payload type numbers; with nothing in
// common the call is refused with 488 and a Warning (RFC 3261 §21.4.26)
// before the callee rings.
func TestMediaCodecs(t *testing.T) {
	r := rangeCodecs
	pl := startParley(t, parleyConfig{Extra: r.yaml([]string{"PCMA", "telephone-event"}, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	host := "127.0.0.1"

	t.Run("no codec in common 488", func(t *testing.T) {
		aSock := newRTPSocket(t)
		alice.setSDP(func([]byte) []byte { return mediaOffer(host, aSock.Port(), "0") })
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		c := alice.call(ctx, "1002")
		if c.status() != 488 {
			t.Fatalf("PCMU-only offer with rtp.codecs [PCMA]: responses %v, final:\n%v\nwant 488", c.codes(), c.Final)
		}
		w := c.Final.GetHeader("Warning")
		if w == nil || strings.TrimSpace(w.Value()) == "" {
			t.Errorf("488 without a Warning header saying why:\n%s", c.Final)
		} else {
			mediaDebug(t, "Warning: %s", w.Value())
		}
		bob.noEvent(evInvite, 300*time.Millisecond)
	})

	t.Run("intersection in the caller's payload types", func(t *testing.T) {
		aSock, bSock := newRTPSocket(t), newRTPSocket(t)
		// telephone-event on 98, not the usual 101: the callee must see 98.
		alice.setSDP(func([]byte) []byte { return mediaOffer(host, aSock.Port(), "0", "8", "98") })
		bob.useRTPSocket(bSock)
		mc := mustMediaCall(t, alice, bob)
		got := slices.Clone(mc.CalleeSees.Formats)
		slices.Sort(got)
		if !slices.Equal(got, []string{"8", "98"}) {
			t.Errorf("offer to the callee has payload types %v; want 8 (PCMA) and 98 (telephone-event): the caller's offer 0 8 98 ∩ rtp.codecs [PCMA telephone-event]", mc.CalleeSees.Formats)
		}
		if m := mc.CalleeSees.Rtpmap["98"]; !strings.EqualFold(m, "telephone-event/8000") {
			t.Errorf("offer to the callee maps 98 to %q, want telephone-event/8000", m)
		}
		if !slices.Contains(mc.CallerSees.Formats, "8") || slices.Contains(mc.CallerSees.Formats, "0") {
			t.Errorf("answer to the caller has payload types %v; want PCMA (8) and not PCMU (0)", mc.CallerSees.Formats)
		}
		checkRelayed(t, "answer to the caller", mc.CallerSees, r.Min, r.Max, bSock.Addr())
		checkRelayed(t, "offer to the callee", mc.CalleeSees, r.Min, r.Max, aSock.Addr())
		mc.Out.hangup(t)
		bob.mustEvent(evBye)
	})

	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "INVITE", "code", "488")
}

// TestMediaSymmetricLatching: the caller is behind a NAT. Its SDP names
// port X, but its RTP leaves from port Y. Its audio still reaches the
// callee, and parley sends the callee's audio to Y, where the packets came
// from (RFC 4961), not to X.
func TestMediaSymmetricLatching(t *testing.T) {
	r := rangeNAT
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	announced, real, bSock := newRTPSocket(t), newRTPSocket(t), newRTPSocket(t)
	alice.setSDP(func([]byte) []byte { return mediaOffer("127.0.0.1", announced.Port(), "0", "8", "101") })
	bob.useRTPSocket(bSock)

	mc := mustMediaCall(t, alice, bob)
	checkRelayed(t, "answer to the caller", mc.CallerSees, r.Min, r.Max, bSock.Addr())
	checkRelayed(t, "offer to the callee", mc.CalleeSees, r.Min, r.Max, announced.Addr())
	if t.Failed() {
		t.FailNow()
	}
	mediaDebug(t, "caller announces %v, sends from %v", announced.Addr(), real.Addr())

	// The caller speaks first, from Y.
	const n = 50
	a := rtpStream{Tag: 0xA3, SSRC: 0xA3A3A3A3, PayloadType: firstPT(t, mc.CallerSees), Count: n, Interval: 5 * time.Millisecond}
	var bGot []rtpReceived
	var bErr error
	done := make(chan struct{})
	go func() { defer close(done); bGot, bErr = bSock.receive(n, 2*time.Second) }()
	if err := real.send(mc.CallerSees.Addr, a); err != nil {
		t.Fatal(err)
	}
	<-done
	if bErr != nil {
		t.Errorf("callee receiving the caller's audio: %v", bErr)
	}
	checkStream(t, "caller (from Y) → callee", bGot, a, mc.CalleeSees.Addr)

	// Then the callee answers; its audio must go to Y.
	b := rtpStream{Tag: 0xB3, SSRC: 0xB3B3B3B3, PayloadType: firstPT(t, mc.CalleeSees), Count: n, Interval: 5 * time.Millisecond}
	var aGot []rtpReceived
	var aErr error
	done = make(chan struct{})
	go func() { defer close(done); aGot, aErr = real.receive(n, 2*time.Second) }()
	if err := bSock.send(mc.CalleeSees.Addr, b); err != nil {
		t.Fatal(err)
	}
	<-done
	if aErr != nil {
		t.Errorf("caller's real socket (Y) receiving the callee's audio: %v", aErr)
	}
	checkStream(t, "callee → caller's real address Y", aGot, b, mc.CallerSees.Addr)
	if stray := announced.drain(300 * time.Millisecond); len(stray) > 0 {
		t.Errorf("%d of the callee's packets went to the caller's SDP address X %v after the caller's RTP came from Y %v; want none (symmetric latching)",
			len(stray), announced.Addr(), real.Addr())
	}

	mc.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}

// TestMediaTimeout: with rtp.timeout 1s, an answered call that carries no
// RTP is hung up by parley, which sends BYE to both phones; a call whose
// RTP flows stays up past the timeout and is hung up once it stops.
func TestMediaTimeout(t *testing.T) {
	r := rangeTimeout
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "1s")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	const byeWithin = 6 * time.Second

	t.Run("silent call", func(t *testing.T) {
		aSock, bSock := newRTPSocket(t), newRTPSocket(t)
		alice.useRTPSocket(aSock)
		bob.useRTPSocket(bSock)
		start := time.Now()
		mc := mustMediaCall(t, alice, bob)
		waitByes(t, byeWithin, alice, bob)
		took := time.Since(start)
		mediaDebug(t, "BYEs %v after the call started", took)
		if took < 900*time.Millisecond {
			t.Errorf("BYE %v after the call started, before rtp.timeout (1s)", took)
		}
		_ = mc
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
	})

	t.Run("media keeps the call up", func(t *testing.T) {
		aSock, bSock := newRTPSocket(t), newRTPSocket(t)
		alice.useRTPSocket(aSock)
		bob.useRTPSocket(bSock)
		mc := mustMediaCall(t, alice, bob)
		// 2.5 s of audio both ways, 20 ms apart: well past the timeout.
		const n = 125
		a := rtpStream{Tag: 0xA4, SSRC: 0xA4, PayloadType: firstPT(t, mc.CallerSees), Count: n, Interval: 20 * time.Millisecond}
		b := rtpStream{Tag: 0xB4, SSRC: 0xB4, PayloadType: firstPT(t, mc.CalleeSees), Count: n, Interval: 20 * time.Millisecond}
		aGot, bGot := exchange(t, aSock, bSock, mc, a, b)
		if len(aGot) != n || len(bGot) != n {
			t.Errorf("while the call was up: caller got %d, callee got %d of %d packets", len(aGot), len(bGot), n)
		}
		for _, p := range []*phone{alice, bob} {
			p.noEvent(evBye, 50*time.Millisecond)
		}
		if t.Failed() {
			t.FailNow()
		}
		stopped := time.Now()
		waitByes(t, byeWithin, alice, bob)
		mediaDebug(t, "BYEs %v after the media stopped", time.Since(stopped))
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
	})
}

// waitByes waits, for at most d in all, for a BYE at each phone.
func waitByes(t *testing.T, d time.Duration, phones ...*phone) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, p := range phones {
		if _, err := p.waitEvent(evBye, time.Until(deadline)); err != nil {
			t.Errorf("media timeout: %v", err)
		}
	}
}

// TestMediaPortsReturnToPool: with 20 relay ports (5 calls at once), 50
// calls one after the other, answered and hung up by either side,
// cancelled or refused busy, all get ports, and afterwards every port is
// back in the pool.
func TestMediaPortsReturnToPool(t *testing.T) {
	r := rangeReuse
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	deadline := time.Now().Add(90 * time.Second)

	const calls = 50
	for i := range calls {
		if time.Now().After(deadline) {
			t.Fatalf("call %d: out of time (90 s for %d calls)", i, calls)
		}
		kind := []string{"caller hangs up", "callee hangs up", "cancelled", "busy", "callee hangs up"}[i%5]
		if err := poolCall(t, alice, bob, kind); err != nil {
			t.Fatalf("call %d (%s): %v", i, kind, err)
		}
	}
	pl.waitMetric(t, 5*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 5*time.Second, equals(0), "parley_rtp_ports_in_use")

	// The pool still hands out ports from the range.
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)
	mc := mustMediaCall(t, alice, bob)
	checkRelayed(t, "answer to the caller after 50 calls", mc.CallerSees, r.Min, r.Max, bSock.Addr())
	checkRelayed(t, "offer to the callee after 50 calls", mc.CalleeSees, r.Min, r.Max, aSock.Addr())
	mc.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 5*time.Second, equals(0), "parley_rtp_ports_in_use")
}

// poolCall places one call from alice to bob that ends as kind says.
func poolCall(t *testing.T, alice, bob *phone, kind string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	switch kind {
	case "caller hangs up", "callee hangs up":
		bob.setMode(answerAuto)
		c := alice.call(ctx, "1002")
		if c.status() != 200 {
			return fmt.Errorf("responses %v, want 200 (err %v)", c.codes(), c.Err)
		}
		in, err := bob.waitEvent(evInvite, callTimeout)
		if err != nil {
			return err
		}
		if kind == "caller hangs up" {
			c.hangup(t)
			_, err = bob.waitEvent(evBye, callTimeout)
			return err
		}
		in.Call.hangup(t)
		_, err = alice.waitEvent(evBye, callTimeout)
		return err
	case "cancelled":
		bob.setMode(answerRing)
		go func() {
			if _, err := bob.waitEvent(evInvite, callTimeout); err == nil {
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
		}()
		c := alice.call(ctx, "1002")
		if c.status() != 487 {
			return fmt.Errorf("responses %v, want 487 after CANCEL (err %v)", c.codes(), c.Err)
		}
		if c.Err != nil && !errors.Is(c.Err, context.Canceled) {
			return fmt.Errorf("CANCEL: %w", c.Err)
		}
		return nil
	case "busy":
		bob.setMode(answerBusy)
		c := alice.call(ctx, "1002")
		if _, err := bob.waitEvent(evInvite, callTimeout); err != nil {
			return err
		}
		if c.status() != 486 {
			return fmt.Errorf("responses %v, want 486", c.codes())
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q", kind)
}

// TestMediaPortsExhausted: with 4 relay ports, one call holds them all; a
// second call at the same time is refused with 503 and Retry-After
// (RFC 3261 §21.5.4), and once the first ends the next call gets ports.
func TestMediaPortsExhausted(t *testing.T) {
	r := rangeExhausted
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	carol := newPhone(t, "1003", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	carol.mustRegister()

	first := mustMediaCall(t, alice, bob)
	checkRelayed(t, "answer to the first caller", first.CallerSees, r.Min, r.Max, netip.AddrPort{})

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	second := alice.call(ctx, "1003")
	if second.status() != 503 {
		t.Errorf("second call with every relay port in use: responses %v, final:\n%v\nwant 503", second.codes(), second.Final)
	} else if ra := second.Final.GetHeader("Retry-After"); ra == nil {
		t.Errorf("503 for lack of ports without Retry-After:\n%s", second.Final)
	}
	carol.noEvent(evInvite, 200*time.Millisecond)
	if second.status() == 200 {
		second.hangup(t)
	}

	first.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
	third := mustMediaCall(t, alice, carol)
	checkRelayed(t, "answer to the caller once ports are free", third.CallerSees, r.Min, r.Max, netip.AddrPort{})
	third.Out.hangup(t)
	carol.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}

// TestMediaSippPcap: SIPp's built-in uac_pcap scenario plays G.711 A-law
// from a pcap through parley to a SIPp callee that echoes RTP (-rtp_echo);
// the call completes and parley relays the audio both ways.
func TestMediaSippPcap(t *testing.T) {
	needSipp(t)
	pcapDir := findSippPcaps(t)
	dir := t.TempDir()

	// uac_pcap with the pcap paths made absolute (the built-in one reads
	// pcap/… relative to its working directory).
	uacXML := sippBuiltin(t, "uac_pcap")
	uacXML = strings.ReplaceAll(uacXML, `play_pcap_audio="pcap/`, `play_pcap_audio="`+pcapDir+`/`)
	uacPath := filepath.Join(dir, "uac_pcap.xml")
	writeFile(t, uacPath, uacXML)

	// The built-in uas answers any offer with PCMU; uac_pcap offers only
	// PCMA (and telephone-event), so answer with what was offered.
	uasXML := sippBuiltin(t, "uas")
	uasXML = strings.Replace(uasXML, "RTP/AVP 0", "RTP/AVP 8 101", 1)
	uasXML = strings.Replace(uasXML, "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000\n      a=rtpmap:101 telephone-event/8000", 1)
	if !strings.Contains(uasXML, "RTP/AVP 8 101") {
		t.Fatalf("SIPp's built-in uas has no PCMU answer to rewrite:\n%s", uasXML)
	}
	uasPath := filepath.Join(dir, "uas_pcma.xml")
	writeFile(t, uasPath, uasXML)

	uas := startSipp(t, "sipp-uas-echo", "-sf", uasPath, "-rtp_echo", "-trace_err")
	uas.waitBound(t)
	r := rangeSipp
	pl := startParley(t, parleyConfig{
		Trusted: []string{"127.0.0.1/32"},
		Routes:  [][2]string{{`^9(\d+)$`, fmt.Sprintf("sip:$1@127.0.0.1:%d", uas.Port)}},
		Extra:   r.yaml(nil, ""),
	})
	before, _ := pl.scrapeMetrics(t).get("parley_rtp_packets_total")
	args := []string{pl.SIPAddr, "-sf", uacPath, "-s", "9001", "-m", "1", "-l", "1",
		"-trace_stat", "-stf", "uac.csv", "-trace_err", "-timeout", "40s", "-timeout_error"}
	uac := startSipp(t, "sipp-uac-pcap", append(args, sippReorderFlags...)...)
	if code := uac.wait(t, 50*time.Second); code != 0 {
		t.Errorf("sipp uac_pcap exit code %d, want 0", code)
	}
	if v, ok := uac.stat("SuccessfulCall(C)"); ok && v != "1" {
		t.Errorf("sipp uac_pcap SuccessfulCall(C) = %s, want 1", v)
	}
	// g711a.pcap holds a few hundred 20 ms packets; echoed, parley relays
	// each twice.
	after := pl.waitMetric(t, 3*time.Second, atLeast(before+300), "parley_rtp_packets_total")
	t.Logf("parley relayed %v RTP packets for one uac_pcap call", after-before)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}

// findSippPcaps returns the directory holding SIPp's g711a.pcap.
func findSippPcaps(t *testing.T) string {
	t.Helper()
	for _, d := range []string{"/usr/share/sip-tester", "/usr/share/doc/sip-tester/examples/pcap", "/usr/share/sipp/pcap"} {
		if _, err := os.Stat(filepath.Join(d, "g711a.pcap")); err == nil {
			return d
		}
	}
	out, err := exec.Command("dpkg", "-L", "sip-tester").Output()
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(line, "/g711a.pcap") {
				return filepath.Dir(line)
			}
		}
	}
	t.Fatal("SIPp's g711a.pcap not found (dpkg -L sip-tester | grep pcap)")
	return ""
}

// sippBuiltin returns the XML of one of SIPp's built-in scenarios.
func sippBuiltin(t *testing.T, name string) string {
	t.Helper()
	// sipp -sd exits non-zero (99) after dumping the scenario.
	out, err := exec.Command(needSipp(t), "-sd", name).Output()
	if !bytes.Contains(out, []byte("</scenario>")) {
		t.Fatalf("sipp -sd %s: %v\n%s", name, err, out)
	}
	return string(out)
}
