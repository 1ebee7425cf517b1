package testcalls

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Relay port blocks of the interoperability tests (see rtpRange), and the
// RTP ports of the real phones in them (see phonePorts).
var (
	rangeBaresipAudio = rangeOf(24400)
	rangeBaresipDTMF  = rangeOf(24500)
	rangeBaresipHold  = rangeOf(24600)
	rangeLinphone     = rangeOf(24700)

	portsAudioCaller = phonePorts{27000, 27019}
	portsAudioCallee = phonePorts{27020, 27039}
	portsDTMFCaller  = phonePorts{27100, 27119}
	portsDTMFCallee  = phonePorts{27120, 27139}
	portsHoldCaller  = phonePorts{27200, 27219}
	portsHoldCallee  = phonePorts{27220, 27239}
	portsLinphone    = phonePorts{27300, 27319}
	portsLinphoneBS  = phonePorts{27320, 27339}
)

// Tones of the audio tests: the caller's comes from a WAV file, the
// callee's from baresip's ausine module, so each recording shows which way
// it travelled.
const (
	fileTone   = 1000 // Hz
	sineTone   = 440  // Hz
	toneLength = 60   // seconds of WAV, longer than any call here
)

// packetsFor is how many RTP packets parley relays, both ways together, in
// secs of a G.711 call at 20 ms packets.
func packetsFor(secs int) float64 { return float64(2 * 50 * secs) }

// peerIs matches call events whose peer is user.
func peerIs(user string) func(baresipEvent) bool {
	return func(e baresipEvent) bool { return strings.Contains(e.PeerURI, "sip:"+user+"@") }
}

// baresipCall has caller dial callee's user through parley and waits until
// both phones and parley see the call established.
func baresipCall(t *testing.T, pl *parley, caller, callee *baresip) {
	t.Helper()
	from, to := caller.eventCount(), callee.eventCount()
	caller.command(t, "dial", callee.User)
	caller.waitEvent(t, from, "CALL_ESTABLISHED", nil)
	ev, _ := callee.waitEvent(t, to, "CALL_ESTABLISHED", peerIs(caller.User))
	if ev.Direction != "incoming" {
		t.Errorf("%s: call established with direction %q, want incoming", callee.Name, ev.Direction)
	}
	waitCallState(t, pl, "active", phoneEvent)
	calls := pl.apiCalls(t)
	if len(calls) != 1 || calls[0].From != caller.User || calls[0].To != callee.User {
		t.Fatalf("GET /api/calls: %+v, want one call from %s to %s", calls, caller.User, callee.User)
	}
}

// waitHungUp waits until both phones report the call closed and parley has
// no call left.
func waitHungUp(t *testing.T, pl *parley, phones ...*baresip) {
	t.Helper()
	for _, b := range phones {
		b.waitEvent(t, 0, "CALL_CLOSED", nil)
	}
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
	if calls := pl.apiCalls(t); len(calls) != 0 {
		t.Errorf("GET /api/calls after the hangup: %+v, want []", calls)
	}
}

// wantCallEnded asserts parley logged the call's end for reason (e.g.
// "BYE from callee").
func wantCallEnded(t *testing.T, pl *parley, reason string) {
	t.Helper()
	deadline := time.Now().Add(phoneEvent)
	for {
		log := readFileOrErr(pl.LogPath)
		if strings.Contains(log, `msg="call ended"`) && strings.Contains(log, `reason="`+reason+`"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("parley's log has no \"call ended\" with reason=%q", reason)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBaresipCallCarriesAudio: two baresip phones register with parley using
// digest auth; 1001 calls 1002 and sends a 1 kHz tone from a WAV file (the
// aufile module) while 1002 sends a 440 Hz sine. After a few seconds the
// callee hangs up. Each phone's recording of what it received (the sndfile
// module) must carry the other phone's tone at its frequency and level: the
// audio crossed parley's relay both ways, and not crossed over.
func TestBaresipCallCarriesAudio(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needBaresip(t)
	pl := startParley(t, parleyConfig{Extra: rangeBaresipAudio.yaml(nil, "")})
	wav := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, wav, fileTone, toneLength)

	caller := startBaresip(t, pl, baresipConfig{Name: "caller", User: "1001", Source: "aufile," + wav, RTP: portsAudioCaller, Record: true})
	callee := startBaresip(t, pl, baresipConfig{Name: "callee", User: "1002", Source: "ausine," + strconv.Itoa(sineTone), RTP: portsAudioCallee, Record: true})

	baresipCall(t, pl, caller, callee)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(4)), "parley_rtp_packets_total")
	callee.command(t, "hangup", "")
	waitHungUp(t, pl, caller, callee)
	wantCallEnded(t, pl, "BYE from callee")
	pl.waitMetric(t, phoneEvent, equals(1), "parley_calls_total", "result", "answered")

	checkTone(t, "1002's recording of 1001 (the WAV file)", readPCM(t, callee.recording(t, "dec")).measure(t, recordingStart), fileTone, 3)
	checkTone(t, "1001's recording of 1002 (ausine)", readPCM(t, caller.recording(t, "dec")).measure(t, recordingStart), sineTone, 3)
}

// TestBaresipDTMF: during a call through parley, each baresip phone sends
// digits as RFC 4733 telephone-events (baresip's sndcode command), and the
// other phone reports every digit, in order.
func TestBaresipDTMF(t *testing.T) {
	t.Parallel()
	needParley(t)
	needBaresip(t)
	pl := startParley(t, parleyConfig{Extra: rangeBaresipDTMF.yaml(nil, "")})
	caller := startBaresip(t, pl, baresipConfig{Name: "caller", User: "1001", Source: "ausine,440", RTP: portsDTMFCaller})
	callee := startBaresip(t, pl, baresipConfig{Name: "callee", User: "1002", Source: "ausine,440", RTP: portsDTMFCallee})
	baresipCall(t, pl, caller, callee)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(1)), "parley_rtp_packets_total")

	for _, dir := range []struct {
		from, to *baresip
		digits   string
	}{
		{caller, callee, "1590*#"},
		{callee, caller, "73"},
	} {
		at := dir.to.eventCount()
		dir.from.command(t, "sndcode", dir.digits)
		var got strings.Builder
		for range len(dir.digits) {
			ev, i := dir.to.waitEvent(t, at, "CALL_DTMF_START", nil)
			got.WriteString(ev.Param)
			at = i + 1
		}
		if got.String() != dir.digits {
			t.Errorf("%s sent DTMF %q; %s received %q", dir.from.User, dir.digits, dir.to.User, got.String())
		}
	}

	caller.command(t, "hangup", "")
	waitHungUp(t, pl, caller, callee)
	wantCallEnded(t, pl, "BYE from caller")
}

// TestBaresipHoldResume: the caller puts the call on hold (baresip's hold
// command, a re-INVITE with a=sendonly) and parley shows it suspended, the
// re-INVITE reaching the callee as a new offer; on resume the call is active
// again and the caller's audio flows again: parley's RTP counter grows and
// the callee's RTP stack counts packets from parley's relay again.
//
// baresip 1.0 drops its sndfile tap from the receive pipeline at the first
// re-INVITE ("audio rx pipeline: (play) <--- PCMU", also on a direct call
// without parley), so only the audio before the hold can be checked for the
// caller's tone; after resume the callee's RTCP receive count stands in for
// the recording.
func TestBaresipHoldResume(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needBaresip(t)
	pl := startParley(t, parleyConfig{Extra: rangeBaresipHold.yaml(nil, "")})
	caller := startBaresip(t, pl, baresipConfig{Name: "caller", User: "1001", Source: "ausine," + strconv.Itoa(sineTone), RTP: portsHoldCaller})
	callee := startBaresip(t, pl, baresipConfig{Name: "callee", User: "1002", Source: "ausine,1000", RTP: portsHoldCallee, Record: true})
	baresipCall(t, pl, caller, callee)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(2)), "parley_rtp_packets_total")
	if n := callee.rtpReceived(t); n < 50 {
		t.Errorf("callee received %d RTP packets in the call's first seconds, want at least 50", n)
	}

	from := callee.eventCount()
	caller.command(t, "hold", "")
	waitCallState(t, pl, "suspended", phoneEvent)
	callee.waitEvent(t, from, "CALL_REMOTE_SDP", func(e baresipEvent) bool { return e.Param == "offer" })
	time.Sleep(500 * time.Millisecond) // packets sent before the hold drain
	heldPackets, _ := pl.scrapeMetrics(t).get("parley_rtp_packets_total")
	heldReceived := callee.rtpReceived(t)
	time.Sleep(time.Second)
	stillPackets, _ := pl.scrapeMetrics(t).get("parley_rtp_packets_total")
	stillReceived := callee.rtpReceived(t)
	t.Logf("during one second on hold: parley relayed %v RTP packets, the callee received %d", stillPackets-heldPackets, stillReceived-heldReceived)

	from = callee.eventCount()
	caller.command(t, "resume", "")
	waitCallState(t, pl, "active", phoneEvent)
	callee.waitEvent(t, from, "CALL_REMOTE_SDP", func(e baresipEvent) bool { return e.Param == "offer" })
	pl.waitMetric(t, phoneEvent, atLeast(stillPackets+packetsFor(3)), "parley_rtp_packets_total")
	deadline := time.Now().Add(phoneEvent)
	for n := callee.rtpReceived(t); n < stillReceived+150; n = callee.rtpReceived(t) {
		if time.Now().After(deadline) {
			t.Errorf("callee received %d RTP packets since the hold, want at least 150 (3 s) after resume", n-stillReceived)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	callee.command(t, "hangup", "")
	waitHungUp(t, pl, caller, callee)
	wantCallEnded(t, pl, "BYE from callee")
	checkTone(t, "1002's recording before the hold", readPCM(t, callee.recording(t, "dec")).measure(t, recordingStart), sineTone, 1)
}
