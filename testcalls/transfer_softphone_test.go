package testcalls

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Relay port blocks of the transfer tests (see rtpRange), and the RTP ports
// of their phones (see phonePorts).
var (
	rangeXferBlindBaresip  = rangeOf(30000)
	rangeXferBlindLinphone = rangeOf(30100)
	rangeXferAttended      = rangeOf(30200)
	rangeXferBusy          = rangeOf(30300)
	rangeXferBusyBaresip   = rtpRange{30400, 30449}
	rangeXferAllBaresip    = rtpRange{30450, 30499}

	portsXferBaresipA     = phonePorts{27400, 27419}
	portsXferBaresipB     = phonePorts{27420, 27439}
	portsXferBaresipC     = phonePorts{27440, 27459}
	portsXferLinphoneA    = phonePorts{27460, 27479}
	portsXferLinphoneB    = phonePorts{27480, 27499}
	portsXferLinphoneC    = phonePorts{27500, 27519}
	portsXferAttendedA    = phonePorts{27520, 27539}
	portsXferAttendedB    = phonePorts{27540, 27559}
	portsXferAttendedC    = phonePorts{27560, 27579}
	portsXferBusyA        = phonePorts{27580, 27599}
	portsXferBusyB        = phonePorts{27600, 27619}
	portsXferBusyBaresipA = phonePorts{27620, 27639}
	portsXferBusyBaresipB = phonePorts{27640, 27659}
	portsXferAllBaresipA  = phonePorts{27660, 27669}
	portsXferAllBaresipB  = phonePorts{27670, 27679}
	portsXferAllBaresipC  = phonePorts{27680, 27689}
)

// Tones of the transfer tests, one per role, so that a recording shows
// whom a phone heard: the transferee's, the transferor's and the target's.
const (
	transfereeTone = 1000 // Hz
	transferorTone = 440  // Hz
	targetTone     = 660  // Hz
)

const (
	// transferTimeout bounds a whole transfer: REFER, the INVITE to the
	// target, its answer, the re-INVITEs and the NOTIFYs.
	transferTimeout = 15 * time.Second
	// segmentMargin is cut from each side of a recording's segment: the
	// moments a transfer or a hangup happened are only known to within
	// a jitter buffer and a re-INVITE.
	segmentMargin = 0.5 // seconds
)

// g711 is rtp.codecs of the transfer tests. Two linphones offer opus
// first, and linphonec 5.1 in "soundcard use files" mode then writes the
// 48 kHz audio it decodes into its 8 kHz recording (a tone comes out at a
// sixth of its pitch, six times as long); G.711 keeps every recording true.
var g711 = []string{"PCMU", "PCMA", "telephone-event"}

// What linphonec prints about its calls (linphonec 5.1).
var (
	linphoneOutgoing = regexp.MustCompile(`Establishing call id to \S+, assigned id (\d+)`)
	linphoneIncoming = regexp.MustCompile(`Receiving new incoming call from \S+, assigned id (\d+)`)
)

// linphoneMedia matches linphonec's line once call id's RTP is running.
func linphoneMedia(id string) *regexp.Regexp {
	return regexp.MustCompile(`Media streams established with \S+ for call ` + id + `\b`)
}

// linphoneEnded matches linphonec's line when call id ended.
func linphoneEnded(id string) *regexp.Regexp {
	return regexp.MustCompile(`Call ` + id + ` with \S+ ended`)
}

// linphoneTransferred matches what linphonec prints when the NOTIFY for
// call id's REFER carried a 2xx sipfrag.
func linphoneTransferred(id string) *regexp.Regexp {
	return regexp.MustCompile(`The distant endpoint \S+ of call ` + id + ` has been transfered`)
}

// linphoneTransferState matches liblinphone's log line when a transfer's
// state (what the REFER's NOTIFYs said) becomes state: OutgoingProgress
// for a 1xx sipfrag, Connected for 2xx, Error for a failure.
func linphoneTransferState(state string) *regexp.Regexp {
	return regexp.MustCompile(`Transfer state for CallSession \[\S+\] changed from \[\w+\] to \[LinphoneCall` + state + `\]`)
}

// needLinphone returns linphonec's path (Debian linphone-cli).
func needLinphone(t *testing.T) string {
	t.Helper()
	return needPackage(t, "linphonec", "linphone-cli")
}

// linphoneAudio makes l play a WAV of a tone at freq Hz instead of a
// microphone and record what it hears to a WAV, whose path it returns.
// Unlike baresip's sndfile tap, linphone's recording goes on across
// re-INVITEs, which a transferee and a target receive.
func linphoneAudio(t *testing.T, l *linphone, freq int) string {
	t.Helper()
	wav := filepath.Join(l.Dir, "tone.wav")
	rec := filepath.Join(l.Dir, "heard.wav")
	writeTone(t, wav, freq, toneLength)
	from := l.outputLen()
	l.send(t, "soundcard use files")
	l.waitMatch(t, from, regexp.MustCompile(`Using wav files instead of soundcard`), phoneEvent)
	l.send(t, "play "+wav)
	l.send(t, "record "+rec)
	return rec
}

// linphoneAutoAnswer makes l answer every incoming call.
func linphoneAutoAnswer(t *testing.T, l *linphone) {
	t.Helper()
	from := l.outputLen()
	l.send(t, "autoanswer enable")
	l.send(t, "autoanswer")
	l.waitMatch(t, from, regexp.MustCompile(`Auto answer is enabled`), phoneEvent)
}

// linphoneCall has l call user at parley.lab and waits until the call's
// media runs; it returns linphonec's id of the call.
func linphoneCall(t *testing.T, l *linphone, user string) string {
	t.Helper()
	from := l.outputLen()
	l.send(t, "call sip:"+user+"@parley.lab")
	m, _ := l.waitMatch(t, from, linphoneOutgoing, phoneEvent)
	l.waitMatch(t, from, linphoneMedia(m[1]), phoneEvent)
	return m[1]
}

// linphoneAnswered waits until l (answering automatically) has a call,
// counting from output offset from, with its media running; it returns
// linphonec's id of the call.
func linphoneAnswered(t *testing.T, l *linphone, from int) string {
	t.Helper()
	m, _ := l.waitMatch(t, from, linphoneIncoming, phoneEvent)
	l.waitMatch(t, from, linphoneMedia(m[1]), phoneEvent)
	return m[1]
}

// wantNoREFER asserts that a linphone the test never had transfer anything
// received no REFER: parley handles a transfer itself (RFC 3515 as a
// B2BUA), and the other party only sees re-INVITEs. It also asserts no
// INVITE with a Replaces header reached it: parley matches Replaces against
// its own dialogs.
func wantNoREFER(t *testing.T, l *linphone) {
	t.Helper()
	log := readFileOrErr(l.LogPath)
	if !strings.Contains(log, "INVITE sip:") {
		t.Errorf("%s: liblinphone's log shows no SIP message at all; cannot tell whether a REFER arrived", l.Name)
		return
	}
	if strings.Contains(log, "\nREFER sip:") {
		t.Errorf("%s (%s): received a REFER; parley should have handled the transfer itself", l.Name, l.User)
	}
	if regexp.MustCompile(`(?m)^Replaces:`).MatchString(log) {
		t.Errorf("%s (%s): received an INVITE with Replaces; parley should have matched it against its own dialog", l.Name, l.User)
	}
}

// waitCallBetween waits until parley lists exactly one call, active,
// between users a and b (in either direction).
func waitCallBetween(t *testing.T, pl *parley, a, b string, d time.Duration) {
	t.Helper()
	want := []string{a, b}
	slices.Sort(want)
	deadline := time.Now().Add(d)
	for {
		calls := pl.apiCalls(t)
		if len(calls) == 1 && calls[0].State == "active" {
			got := []string{calls[0].From, calls[0].To}
			slices.Sort(got)
			if slices.Equal(got, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("GET /api/calls: %+v; want exactly one active call between %s and %s within %v", calls, a, b, d)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCallPackets waits until parley's call to user to has relayed n RTP
// packets (both ways together), by its admin API.
func waitCallPackets(t *testing.T, pl *parley, to string, n float64) {
	t.Helper()
	deadline := time.Now().Add(phoneEvent)
	for {
		calls := pl.apiCalls(t)
		for _, c := range calls {
			if c.To == to && c.Media != nil && float64(c.Media.Packets) >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("GET /api/calls: %+v; want the call to %s with %v RTP packets within %v", calls, to, n, phoneEvent)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitNoCalls waits until parley has no call left, by its gauge and its
// admin API.
func waitNoCalls(t *testing.T, pl *parley) {
	t.Helper()
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
	if calls := pl.apiCalls(t); len(calls) != 0 {
		t.Errorf("GET /api/calls at the end: %+v, want []", calls)
	}
}

// rtpPackets is parley's relayed RTP packet count now.
func rtpPackets(t *testing.T, pl *parley) float64 {
	t.Helper()
	v, _ := pl.scrapeMetrics(t).get("parley_rtp_packets_total")
	return v
}

// segment returns the samples of p between from and to seconds.
func (p pcm) segment(from, to float64) pcm {
	frame := 2 * p.Channels
	at := func(s float64) int {
		i := int(s*float64(p.Rate)) * frame
		return max(0, min(i, len(p.Data)))
	}
	out := p
	out.Data = p.Data[at(from):at(to)]
	return out
}

// timeline places the moments of a test on a recording that started when
// the call was connected and ended at its hangup: Before is the segment
// heard before the transfer (or the hold), After the one heard since the
// transfer was done. The end is anchored at the hangup, so that a gap in
// the middle of the recording does not shift After.
type timeline struct {
	Connected, Changed, Transferred, HungUp time.Time
}

func (tl timeline) before(p pcm) pcm {
	return p.segment(recordingStart, tl.Changed.Sub(tl.Connected).Seconds()-segmentMargin)
}

func (tl timeline) after(p pcm) pcm {
	end := p.Seconds()
	return p.segment(end-tl.HungUp.Sub(tl.Transferred).Seconds()+2*segmentMargin, end-segmentMargin)
}

// TestTransferBlindBaresip: linphone 1001 calls baresip 1002 through parley
// and they talk. 1002 transfers 1001 to 1003 with baresip's transfer
// command (a REFER in its dialog with Refer-To: sip:1003@parley.lab).
// parley calls baresip 1003 itself, from 1001, moves 1001's media to 1003
// with a re-INVITE and ends 1002's call (baresip hangs up by itself on the
// NOTIFY with a 200 sipfrag, so either may send the BYE). 1001 never sees a
// REFER. Afterwards parley lists one call, 1001 with 1003, each hears the
// other's tone, and when 1003 hangs up both get BYE and parley has no call.
func TestTransferBlindBaresip(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needBaresip(t)
	needLinphone(t)
	pl := startParley(t, parleyConfig{Extra: rangeXferBlindBaresip.yaml(g711, "")})
	transferee := startLinphone(t, pl, "transferee", "1001", portsXferBaresipA)
	heard := linphoneAudio(t, transferee, transfereeTone)
	transferor := startBaresip(t, pl, baresipConfig{Name: "transferor", User: "1002", Source: "ausine," + strconv.Itoa(transferorTone), RTP: portsXferBaresipB, SIPTrace: true})
	target := startBaresip(t, pl, baresipConfig{Name: "target", User: "1003", Source: "ausine," + strconv.Itoa(targetTone), RTP: portsXferBaresipC, Record: true})

	var tl timeline
	b0, c0 := transferor.eventCount(), target.eventCount()
	id := linphoneCall(t, transferee, "1002")
	tl.Connected = time.Now()
	transferor.waitEvent(t, b0, "CALL_ESTABLISHED", peerIs("1001"))
	waitCallBetween(t, pl, "1001", "1002", phoneEvent)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(3)), "parley_rtp_packets_total")

	tl.Changed = time.Now()
	a0 := transferee.outputLen()
	transferor.command(t, "transfer", "sip:1003@parley.lab")
	ev, _ := target.waitEvent(t, c0, "CALL_ESTABLISHED", nil)
	if !peerIs("1001")(ev) {
		t.Errorf("target: call established from %s, want the transferee 1001 (From of parley's INVITE)", ev.PeerURI)
	}
	tl.Transferred = time.Now()
	closed, _ := transferor.waitEvent(t, b0, "CALL_CLOSED", nil)
	t.Logf("transferor's call closed: %q", closed.Param)
	if failed := transferor.eventsOf("TRANSFER_FAILED"); len(failed) > 0 {
		t.Errorf("transferor: transfer failed: %+v", failed)
	}
	waitCallBetween(t, pl, "1001", "1003", transferTimeout)
	pl.waitMetric(t, phoneEvent, atLeast(rtpPackets(t, pl)+packetsFor(4)), "parley_rtp_packets_total")
	if out := readFileOrErr(transferee.OutPath)[a0:]; linphoneEnded(id).MatchString(out) {
		t.Errorf("transferee: its call ended during the transfer:\n%s", out)
	}
	wantNoREFER(t, transferee)
	checkReferNotifies(t, "transferor (baresip 1002)", readFileOrErr(transferor.LogPath), "SIP/2.0 200")

	target.command(t, "hangup", "")
	transferee.waitMatch(t, a0, linphoneEnded(id), phoneEvent)
	target.waitEvent(t, c0, "CALL_CLOSED", nil)
	tl.HungUp = time.Now()
	waitNoCalls(t, pl)

	checkTone(t, "1003's recording of the transferee", readPCM(t, target.recording(t, "dec")).measure(t, recordingStart), transfereeTone, 2)
	t.Logf("1001's call: %v", tl)
	rec := readPCM(t, heard)
	checkTone(t, "1001's recording before the transfer (the transferor)", tl.before(rec).measure(t, 0), transferorTone, 1.5)
	checkTone(t, "1001's recording after the transfer (the target)", tl.after(rec).measure(t, 0), targetTone, 2)
}

// TestTransferBlindAllBaresip: as TestTransferBlindBaresip with baresip as
// the transferee too. baresip drops its sndfile tap at the first re-INVITE
// (see TestBaresipHoldResume), so what 1001 hears after parley's re-INVITE
// is told by its RTP stack instead of a recording: packets with 1003's SSRC
// keep arriving (parley's relay passes SSRCs through). 1003's recording, of
// a call that had no re-INVITE, carries 1001's tone. 1001 hangs up.
func TestTransferBlindAllBaresip(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needBaresip(t)
	pl := startParley(t, parleyConfig{Extra: rangeXferAllBaresip.yaml(g711, "")})
	transferee := startBaresip(t, pl, baresipConfig{Name: "transferee", User: "1001", Source: "ausine," + strconv.Itoa(transfereeTone), RTP: portsXferAllBaresipA})
	transferor := startBaresip(t, pl, baresipConfig{Name: "transferor", User: "1002", Source: "ausine," + strconv.Itoa(transferorTone), RTP: portsXferAllBaresipB, SIPTrace: true})
	target := startBaresip(t, pl, baresipConfig{Name: "target", User: "1003", Source: "ausine," + strconv.Itoa(targetTone), RTP: portsXferAllBaresipC, Record: true})

	b0, c0 := transferor.eventCount(), target.eventCount()
	baresipCall(t, pl, transferee, transferor)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(2)), "parley_rtp_packets_total")

	a1 := transferee.eventCount()
	transferor.command(t, "transfer", "sip:1003@parley.lab")
	ev, _ := target.waitEvent(t, c0, "CALL_ESTABLISHED", nil)
	if !peerIs("1001")(ev) {
		t.Errorf("target: call established from %s, want the transferee 1001 (From of parley's INVITE)", ev.PeerURI)
	}
	closed, _ := transferor.waitEvent(t, b0, "CALL_CLOSED", nil)
	t.Logf("transferor's call closed: %q", closed.Param)
	transferee.waitEvent(t, a1, "CALL_REMOTE_SDP", func(e baresipEvent) bool { return e.Param == "offer" })
	waitCallBetween(t, pl, "1001", "1003", transferTimeout)
	ssrc := target.rtpSSRC(t)
	heard := transferee.rtpReceivedFrom(t, ssrc)
	pl.waitMetric(t, phoneEvent, atLeast(rtpPackets(t, pl)+packetsFor(3)), "parley_rtp_packets_total")
	n := transferee.rtpReceivedFrom(t, ssrc)
	t.Logf("transferee: %d RTP packets with the target's SSRC %#08x, %d of them in the last 3 s", n, ssrc, n-heard)
	if n < heard+100 {
		t.Errorf("transferee received %d RTP packets with the target's SSRC %#08x in the 3 s after the transfer, want at least 100", n-heard, ssrc)
	}
	if got := transferee.eventsOf("TRANSFER"); len(got) > 0 {
		t.Errorf("transferee: received a REFER: %+v", got)
	}
	if got := transferee.eventsOf("CALL_CLOSED"); len(got) > 0 {
		t.Errorf("transferee: its call ended during the transfer: %+v", got)
	}
	checkReferNotifies(t, "transferor (baresip 1002)", readFileOrErr(transferor.LogPath), "SIP/2.0 200")

	transferee.command(t, "hangup", "")
	transferee.waitEvent(t, a1, "CALL_CLOSED", nil)
	target.waitEvent(t, c0, "CALL_CLOSED", nil)
	waitNoCalls(t, pl)
	wantCallEnded(t, pl, "BYE from caller")

	checkTone(t, "1003's recording of the transferee", readPCM(t, target.recording(t, "dec")).measure(t, recordingStart), transfereeTone, 2)
}

// TestTransferBlindLinphone: linphone 1001 calls linphone 1002, which
// transfers it with "transfer <id> sip:1003@parley.lab" to baresip 1003.
// linphone 1002 learns from parley's NOTIFYs (sipfrag 100, then 200 with
// Subscription-State terminated) that the transfer worked, and its call
// ends (it hangs up by itself on the 200, or parley sends BYE). 1001 and
// 1003 then talk through parley, and 1001's hangup ends everything.
func TestTransferBlindLinphone(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needBaresip(t)
	needLinphone(t)
	pl := startParley(t, parleyConfig{Extra: rangeXferBlindLinphone.yaml(g711, "")})
	transferee := startLinphone(t, pl, "transferee", "1001", portsXferLinphoneA)
	heard := linphoneAudio(t, transferee, transfereeTone)
	transferor := startLinphone(t, pl, "transferor", "1002", portsXferLinphoneB)
	linphoneAudio(t, transferor, transferorTone)
	linphoneAutoAnswer(t, transferor)
	target := startBaresip(t, pl, baresipConfig{Name: "target", User: "1003", Source: "ausine," + strconv.Itoa(targetTone), RTP: portsXferLinphoneC, Record: true})

	var tl timeline
	b0, c0 := transferor.outputLen(), target.eventCount()
	id := linphoneCall(t, transferee, "1002")
	tl.Connected = time.Now()
	bid := linphoneAnswered(t, transferor, b0)
	waitCallBetween(t, pl, "1001", "1002", phoneEvent)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(3)), "parley_rtp_packets_total")

	tl.Changed = time.Now()
	a0, b1 := transferee.outputLen(), transferor.outputLen()
	transferor.send(t, "transfer "+bid+" sip:1003@parley.lab")
	ev, _ := target.waitEvent(t, c0, "CALL_ESTABLISHED", nil)
	if !peerIs("1001")(ev) {
		t.Errorf("target: call established from %s, want the transferee 1001 (From of parley's INVITE)", ev.PeerURI)
	}
	tl.Transferred = time.Now()
	transferor.waitLog(t, linphoneTransferState("OutgoingProgress"), transferTimeout)
	transferor.waitLog(t, linphoneTransferState("Connected"), transferTimeout)
	transferor.waitMatch(t, b1, linphoneTransferred(bid), transferTimeout)
	transferor.waitMatch(t, b1, linphoneEnded(bid), transferTimeout)
	waitCallBetween(t, pl, "1001", "1003", transferTimeout)
	pl.waitMetric(t, phoneEvent, atLeast(rtpPackets(t, pl)+packetsFor(4)), "parley_rtp_packets_total")
	if out := readFileOrErr(transferee.OutPath)[a0:]; linphoneEnded(id).MatchString(out) {
		t.Errorf("transferee: its call ended during the transfer:\n%s", out)
	}
	wantNoREFER(t, transferee)
	checkReferNotifies(t, "transferor (linphone 1002)", readFileOrErr(transferor.LogPath), "SIP/2.0 200")

	transferee.send(t, "terminate "+id)
	transferee.waitMatch(t, a0, linphoneEnded(id), phoneEvent)
	target.waitEvent(t, c0, "CALL_CLOSED", nil)
	tl.HungUp = time.Now()
	waitNoCalls(t, pl)

	checkTone(t, "1003's recording of the transferee", readPCM(t, target.recording(t, "dec")).measure(t, recordingStart), transfereeTone, 2)
	t.Logf("1001's call: %v", tl)
	rec := readPCM(t, heard)
	checkTone(t, "1001's recording before the transfer (the transferor)", tl.before(rec).measure(t, 0), transferorTone, 1.5)
	checkTone(t, "1001's recording after the transfer (the target)", tl.after(rec).measure(t, 0), targetTone, 2)
}

// TestTransferAttendedLinphone: linphone 1001 calls linphone 1002 (call 1),
// puts it on hold ("pause"), calls linphone 1003 (call 2) and transfers
// call 1 to call 2 ("transfer <id1> --to-call <id2>": a REFER in call 1's
// dialog whose Refer-To carries Replaces with call 2's Call-ID and tags, as
// a URI header). parley matches the Replaces against its own dialog of call
// 2, joins 1002 and 1003, tells 1001 (NOTIFY 200), and 1001's legs of both
// calls end. 1002 and 1003 then hear each other, parley lists one call
// between them, and 1002's hangup ends everything. Neither 1002 nor 1003
// sees the REFER or an INVITE with Replaces.
func TestTransferAttendedLinphone(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needLinphone(t)
	pl := startParley(t, parleyConfig{Extra: rangeXferAttended.yaml(g711, "")})
	transferor := startLinphone(t, pl, "transferor", "1001", portsXferAttendedA)
	linphoneAudio(t, transferor, transferorTone)
	transferee := startLinphone(t, pl, "transferee", "1002", portsXferAttendedB)
	heardB := linphoneAudio(t, transferee, transfereeTone)
	linphoneAutoAnswer(t, transferee)
	target := startLinphone(t, pl, "target", "1003", portsXferAttendedC)
	heardC := linphoneAudio(t, target, targetTone)
	linphoneAutoAnswer(t, target)

	var tlB, tlC timeline
	b0, c0 := transferee.outputLen(), target.outputLen()
	id1 := linphoneCall(t, transferor, "1002")
	tlB.Connected = time.Now()
	bid := linphoneAnswered(t, transferee, b0)
	waitCallBetween(t, pl, "1001", "1002", phoneEvent)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(3)), "parley_rtp_packets_total")

	tlB.Changed = time.Now()
	a0 := transferor.outputLen()
	transferor.send(t, "pause "+id1)
	transferor.waitMatch(t, a0, regexp.MustCompile(`Call `+id1+` with \S+ is now paused`), phoneEvent)
	transferee.waitMatch(t, b0, regexp.MustCompile(`Call `+bid+` has been paused by`), phoneEvent)
	id2 := linphoneCall(t, transferor, "1003")
	tlC.Connected = time.Now()
	cid := linphoneAnswered(t, target, c0)
	if calls := pl.apiCalls(t); len(calls) != 2 {
		t.Errorf("GET /api/calls with call 2 up and call 1 on hold: %+v, want two calls", calls)
	}
	waitCallPackets(t, pl, "1003", packetsFor(3))

	tlC.Changed = time.Now()
	a1, b1, c1 := transferor.outputLen(), transferee.outputLen(), target.outputLen()
	transferor.send(t, "transfer "+id1+" --to-call "+id2)
	transferor.waitLog(t, linphoneTransferState("Connected"), transferTimeout)
	transferor.waitMatch(t, a1, linphoneTransferred(id1), transferTimeout)
	transferor.waitMatch(t, a1, linphoneEnded(id1), transferTimeout)
	transferor.waitMatch(t, a1, linphoneEnded(id2), transferTimeout)
	waitCallBetween(t, pl, "1002", "1003", transferTimeout)
	tlB.Transferred, tlC.Transferred = time.Now(), time.Now()
	pl.waitMetric(t, phoneEvent, atLeast(rtpPackets(t, pl)+packetsFor(4)), "parley_rtp_packets_total")
	if out := readFileOrErr(transferee.OutPath)[b1:]; linphoneEnded(bid).MatchString(out) {
		t.Errorf("transferee: its call ended during the transfer:\n%s", out)
	}
	if out := readFileOrErr(target.OutPath)[c1:]; linphoneEnded(cid).MatchString(out) {
		t.Errorf("target: its call ended during the transfer:\n%s", out)
	}
	wantNoREFER(t, transferee)
	wantNoREFER(t, target)
	checkReferNotifies(t, "transferor (linphone 1001)", readFileOrErr(transferor.LogPath), "SIP/2.0 200")

	transferee.send(t, "terminate "+bid)
	transferee.waitMatch(t, b1, linphoneEnded(bid), phoneEvent)
	target.waitMatch(t, c1, linphoneEnded(cid), phoneEvent)
	tlB.HungUp, tlC.HungUp = time.Now(), time.Now()
	waitNoCalls(t, pl)

	t.Logf("1002's call: %v; 1003's call: %v", tlB, tlC)
	recB, recC := readPCM(t, heardB), readPCM(t, heardC)
	checkTone(t, "1002's recording before the hold (the transferor)", tlB.before(recB).measure(t, 0), transferorTone, 1.5)
	checkTone(t, "1003's recording before the transfer (the transferor)", tlC.before(recC).measure(t, 0), transferorTone, 1)
	checkTone(t, "1002's recording after the transfer (the target)", tlB.after(recB).measure(t, 0), targetTone, 2)
	checkTone(t, "1003's recording after the transfer (the transferee)", tlC.after(recC).measure(t, 0), transfereeTone, 2)
}

// TestTransferBlindBusyTarget: baresip 1001 calls linphone 1002, which
// transfers it to 1003; 1003 answers parley's INVITE (From 1001,
// Referred-By 1002) with 486. parley reports the failure to 1002 in a
// NOTIFY whose sipfrag is the 486, and the call between 1001 and 1002 stays
// up with its audio: 1001 notices nothing. linphone is the transferor
// because baresip 1.0 hangs up by itself when a transfer fails.
func TestTransferBlindBusyTarget(t *testing.T) {
	t.Parallel()
	needParley(t)
	needBaresip(t)
	needLinphone(t)
	pl := startParley(t, parleyConfig{Extra: rangeXferBusy.yaml(g711, "")})
	transferee := startBaresip(t, pl, baresipConfig{Name: "transferee", User: "1001", Source: "ausine," + strconv.Itoa(transfereeTone), RTP: portsXferBusyA})
	transferor := startLinphone(t, pl, "transferor", "1002", portsXferBusyB)
	linphoneAudio(t, transferor, transferorTone)
	linphoneAutoAnswer(t, transferor)
	target := newPhone(t, "1003", pl.SIPAddr, "udp")
	target.setMode(answerBusy)
	target.mustRegister()

	a0, b0 := transferee.eventCount(), transferor.outputLen()
	transferee.command(t, "dial", "1002")
	transferee.waitEvent(t, a0, "CALL_ESTABLISHED", nil)
	bid := linphoneAnswered(t, transferor, b0)
	waitCallBetween(t, pl, "1001", "1002", phoneEvent)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(2)), "parley_rtp_packets_total")

	b1 := transferor.outputLen()
	transferor.send(t, "transfer "+bid+" sip:1003@parley.lab")
	inv := target.mustEvent(evInvite)
	if from := inv.Req.From(); from == nil || from.Address.User != "1001" {
		t.Errorf("parley's INVITE to the target: From %v, want the transferee 1001", from)
	}
	if rb := inv.Req.GetHeader("Referred-By"); rb == nil || !strings.Contains(rb.Value(), "sip:1002@") {
		t.Errorf("parley's INVITE to the target: Referred-By %v, want the transferor 1002", rb)
	}
	transferor.waitLog(t, linphoneTransferState("Error"), transferTimeout)
	checkReferNotifies(t, "transferor (linphone 1002)", readFileOrErr(transferor.LogPath), "SIP/2.0 486")

	// The failed transfer leaves the call as it was: still listed, still
	// relaying both ways, with neither phone told anything but the
	// transferor.
	waitCallBetween(t, pl, "1001", "1002", phoneEvent)
	packets := rtpPackets(t, pl)
	received := transferee.rtpReceived(t)
	pl.waitMetric(t, phoneEvent, atLeast(packets+packetsFor(2)), "parley_rtp_packets_total")
	if n := transferee.rtpReceived(t); n < received+50 {
		t.Errorf("transferee received %d RTP packets in the two seconds after the failed transfer, want at least 50", n-received)
	}
	if got := transferee.eventsOf("CALL_CLOSED"); len(got) > 0 {
		t.Errorf("transferee: call closed by the failed transfer: %+v", got)
	}
	if got := transferee.eventsOf("TRANSFER"); len(got) > 0 {
		t.Errorf("transferee: received a REFER: %+v", got)
	}
	if out := readFileOrErr(transferor.OutPath)[b1:]; linphoneEnded(bid).MatchString(out) {
		t.Errorf("transferor: its call ended on the failed transfer:\n%s", out)
	}

	transferor.send(t, "terminate "+bid)
	transferor.waitMatch(t, b1, linphoneEnded(bid), phoneEvent)
	transferee.waitEvent(t, a0, "CALL_CLOSED", nil)
	waitNoCalls(t, pl)
}

// TestTransferBlindBusyTargetBaresip: as TestTransferBlindBusyTarget with
// baresip as the transferor. baresip reports parley's NOTIFY with the 486
// sipfrag as TRANSFER_FAILED with the sipfrag's status, and then (baresip
// 1.0's menu module) hangs up the call itself, so the call ends with the
// transferor's BYE, not because of parley.
func TestTransferBlindBusyTargetBaresip(t *testing.T) {
	t.Parallel()
	needParley(t)
	needBaresip(t)
	pl := startParley(t, parleyConfig{Extra: rangeXferBusyBaresip.yaml(g711, "")})
	transferee := startBaresip(t, pl, baresipConfig{Name: "transferee", User: "1001", Source: "ausine," + strconv.Itoa(transfereeTone), RTP: portsXferBusyBaresipA})
	transferor := startBaresip(t, pl, baresipConfig{Name: "transferor", User: "1002", Source: "ausine," + strconv.Itoa(transferorTone), RTP: portsXferBusyBaresipB, SIPTrace: true})
	target := newPhone(t, "1003", pl.SIPAddr, "udp")
	target.setMode(answerBusy)
	target.mustRegister()

	a0, b0 := transferee.eventCount(), transferor.eventCount()
	baresipCall(t, pl, transferee, transferor)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(2)), "parley_rtp_packets_total")

	transferor.command(t, "transfer", "sip:1003@parley.lab")
	inv := target.mustEvent(evInvite)
	if from := inv.Req.From(); from == nil || from.Address.User != "1001" {
		t.Errorf("parley's INVITE to the target: From %v, want the transferee 1001", from)
	}
	if rb := inv.Req.GetHeader("Referred-By"); rb == nil || !strings.Contains(rb.Value(), "sip:1002@") {
		t.Errorf("parley's INVITE to the target: Referred-By %v, want the transferor 1002", rb)
	}
	ev, _ := transferor.waitEvent(t, b0, "TRANSFER_FAILED", nil)
	if !strings.HasPrefix(ev.Param, "486") {
		t.Errorf("transferor: TRANSFER_FAILED %q, want the target's 486", ev.Param)
	}
	checkReferNotifies(t, "transferor (baresip 1002)", readFileOrErr(transferor.LogPath), "SIP/2.0 486")
	if got := transferee.eventsOf("TRANSFER"); len(got) > 0 {
		t.Errorf("transferee: received a REFER: %+v", got)
	}

	// baresip's menu module hangs up without a CALL_CLOSED event; parley's
	// log tells whose BYE ended the call.
	transferee.waitEvent(t, a0, "CALL_CLOSED", nil)
	waitNoCalls(t, pl)
	wantCallEnded(t, pl, "BYE from callee")
}

// String shows a timeline in failure messages.
func (tl timeline) String() string {
	return fmt.Sprintf("connected %s, changed +%.1fs, transferred +%.1fs, hung up +%.1fs",
		tl.Connected.Format("15:04:05.0"), tl.Changed.Sub(tl.Connected).Seconds(),
		tl.Transferred.Sub(tl.Connected).Seconds(), tl.HungUp.Sub(tl.Connected).Seconds())
}

// sipMessage is one SIP message a phone logged (baresip -s, liblinphone's
// log): its first line, its headers by lower-case full name, and the first
// line of its body (all a sipfrag needs).
type sipMessage struct {
	Start   string
	Headers map[string][]string
	Body    string
}

// header is the first value of the header name (lower-case, full form).
func (m sipMessage) header(name string) string {
	if v := m.Headers[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// cseq is the message's CSeq number and method.
func (m sipMessage) cseq() (int, string) {
	num, method, _ := strings.Cut(m.header("cseq"), " ")
	n, _ := strconv.Atoi(strings.TrimSpace(num))
	return n, strings.TrimSpace(method)
}

// String is the message's first line and CSeq, for failure messages.
func (m sipMessage) String() string {
	s := m.Start + " (CSeq " + m.header("cseq")
	if e := m.header("event"); e != "" {
		s += ", Event " + e
	}
	if st := m.header("subscription-state"); st != "" {
		s += ", Subscription-State " + st
	}
	if m.Body != "" {
		s += ", body " + strconv.Quote(m.Body)
	}
	return s + ")"
}

var (
	sipStartLine = regexp.MustCompile(`^(?:[A-Z]+ sips?:\S+ SIP/2\.0|SIP/2\.0 \d{3} .*)$`)
	// sipCompact maps RFC 3261 §7.3.3 compact header names (and RFC 3515's
	// r for Refer-To) to the full ones.
	sipCompact = map[string]string{"c": "content-type", "l": "content-length", "o": "event", "r": "refer-to", "i": "call-id", "f": "from", "t": "to", "m": "contact", "v": "via"}
)

// sipMessages finds the SIP messages in a phone's log, in the order the
// phone logged them (the order it sent and received them).
func sipMessages(log string) []sipMessage {
	lines := strings.Split(strings.ReplaceAll(log, "\r", ""), "\n")
	var msgs []sipMessage
	for i := 0; i < len(lines); i++ {
		if !sipStartLine.MatchString(lines[i]) {
			continue
		}
		m := sipMessage{Start: lines[i], Headers: map[string][]string{}}
		j := i + 1
		for ; j < len(lines) && lines[j] != ""; j++ {
			name, value, ok := strings.Cut(lines[j], ":")
			if !ok {
				break
			}
			name = strings.ToLower(strings.TrimSpace(name))
			if full, ok := sipCompact[name]; ok {
				name = full
			}
			m.Headers[name] = append(m.Headers[name], strings.TrimSpace(value))
		}
		if n, _ := strconv.Atoi(m.header("content-length")); n > 0 {
			for j < len(lines) && lines[j] == "" {
				j++
			}
			if j < len(lines) {
				m.Body = strings.TrimSpace(lines[j])
			}
		}
		msgs = append(msgs, m)
		i = j
	}
	return msgs
}

// eventID is the id parameter of an Event header ("refer;id=41206").
func eventID(event string) string {
	for _, p := range strings.Split(event, ";")[1:] {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "id") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checkReferNotifies checks, in the log of the phone that sent a REFER,
// what RFC 3515 asks of parley as the REFER's recipient: a 202 to the
// REFER before any NOTIFY (linphone answers a NOTIFY that overtakes it with
// 491, baresip with 481); NOTIFYs with Event: refer;id=<the REFER's CSeq>
// (baresip's stack answers any other id with 481) and Content-Type
// message/sipfrag, starting with "SIP/2.0 100 Trying" and ending with the
// final sipfrag final (e.g. "SIP/2.0 200") under Subscription-State
// terminated; and every NOTIFY answered 200 by the phone.
func checkReferNotifies(t *testing.T, who, log, final string) {
	t.Helper()
	msgs := sipMessages(log)
	accepted, at := 0, -1
	for i, m := range msgs {
		if n, method := m.cseq(); method == "REFER" && strings.HasPrefix(m.Start, "SIP/2.0 202") {
			accepted, at = n, i
			break
		}
	}
	var notifies []sipMessage
	first := -1
	for i, m := range msgs {
		if strings.HasPrefix(m.Start, "NOTIFY ") && strings.HasPrefix(strings.ToLower(m.header("event")), "refer") {
			notifies = append(notifies, m)
			if first < 0 {
				first = i
			}
		}
		if _, method := m.cseq(); method == "NOTIFY" && strings.HasPrefix(m.Start, "SIP/2.0 ") && !strings.HasPrefix(m.Start, "SIP/2.0 200") {
			t.Errorf("%s answered a NOTIFY from parley with %q", who, m.Start)
		}
	}
	if at < 0 {
		var refers []string
		for _, m := range msgs {
			if _, method := m.cseq(); method == "REFER" {
				refers = append(refers, m.String())
			}
		}
		t.Errorf("%s got no 202 to its REFER; REFER messages in its log: %q", who, refers)
		return
	}
	if len(notifies) == 0 {
		t.Errorf("%s got no NOTIFY with Event: refer", who)
		return
	}
	if first < at {
		t.Errorf("%s got parley's first NOTIFY (%v) before the 202 to its REFER", who, notifies[0])
	}
	want := strconv.Itoa(accepted)
	for _, n := range notifies {
		// RFC 3515 §2.4.6 makes the id optional for a dialog's first REFER
		// only; parley always sends it, and a wrong one is worse than none.
		if id := eventID(n.header("event")); id != want {
			t.Errorf("%s got %v; want Event: refer;id=%s (the REFER's CSeq)", who, n, want)
		}
		if ct := strings.ToLower(n.header("content-type")); !strings.HasPrefix(ct, "message/sipfrag") {
			t.Errorf("%s got %v with Content-Type %q, want message/sipfrag", who, n, ct)
		}
	}
	if !strings.HasPrefix(notifies[0].Body, "SIP/2.0 100") {
		t.Errorf("%s: parley's first NOTIFY is %v, want the sipfrag SIP/2.0 100 Trying", who, notifies[0])
	}
	last := notifies[len(notifies)-1]
	if !strings.HasPrefix(last.Body, final) || !strings.HasPrefix(strings.TrimSpace(last.header("subscription-state")), "terminated") {
		t.Errorf("%s: parley's last NOTIFY is %v, want the sipfrag %q with Subscription-State terminated", who, last, final)
	}
	t.Logf("%s: NOTIFYs from parley: %v", who, notifies)
}
