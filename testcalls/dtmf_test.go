package testcalls

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
)

// DTMF interworking (issue 13): a key pressed on one leg arrives exactly
// once on the other, whatever each phone uses. These tests use relay
// ranges from 30500 and phone RTP ports from 27700.

// rtpSocketAt binds a phone's RTP socket on 127.0.0.1:port, a port of the
// block these tests own, and closes it when t ends.
func rtpSocketAt(t *testing.T, port int) *rtpSocket {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	t.Cleanup(func() { conn.Close() })
	return &rtpSocket{t: t, conn: conn}
}

// dtmfPhone is a sipgo phone whose SDP offers or answers PCMU, with
// telephone-event 101 when events is set, for RTP on sock.
func dtmfPhone(t *testing.T, p *parley, user string, sock *rtpSocket, events bool) *phone {
	ph := newPhone(t, user, p.SIPAddr, "udp")
	pts := []string{"0"}
	if events {
		pts = append(pts, "101")
	}
	ph.setSDP(func(offer []byte) []byte {
		switch {
		case offer == nil:
			return mediaOffer("127.0.0.1", sock.Port(), pts...)
		case events:
			return mediaAnswer(offer, "127.0.0.1", sock.Port())
		}
		return mediaOffer("127.0.0.1", sock.Port(), "0")
	})
	return ph
}

// hasEvents reports whether an SDP audio stream offers telephone-event,
// and on which payload type.
func hasEvents(a sdpAudio) (string, bool) {
	for _, pt := range a.Formats {
		if strings.HasPrefix(strings.ToLower(a.Rtpmap[pt]), "telephone-event/") {
			return pt, true
		}
	}
	return "", false
}

// eventCode is the RFC 4733 code of a key.
func eventCode(key byte) byte {
	switch key {
	case '*':
		return 10
	case '#':
		return 11
	case 'A', 'B', 'C', 'D':
		return 12 + key - 'A'
	}
	return key - '0'
}

// keyOf is the key of an RFC 4733 code.
func keyOf(code byte) byte {
	return "0123456789*#ABCD"[code&15]
}

// sendKeys sends audio (PCMU, 20 ms) to dst from sock, with the keys as
// RFC 4733 events (payload type pt) in the same stream: for each key, five
// audio packets, then the event as a phone sends it: a first packet with
// the marker, two more as the key is held, and three end packets (the
// retransmissions RFC 4733 §2.5.1.4 asks for), all with the event's
// timestamp. After the keys it sends audio for tail more packets.
func sendKeys(sock *rtpSocket, dst netip.AddrPort, ssrc uint32, pt uint8, keys string, tail int) error {
	seq, ts := uint16(4000), uint32(160000)
	write := func(p rtp.Packet) error {
		raw, err := p.Marshal()
		if err != nil {
			return err
		}
		_, err = sock.conn.WriteToUDPAddrPort(raw, dst)
		time.Sleep(20 * time.Millisecond)
		return err
	}
	audio := func(n int) error {
		for range n {
			seq++
			ts += rtpPayloadSize
			if err := write(rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: make([]byte, rtpPayloadSize)}); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range len(keys) {
		if err := audio(5); err != nil {
			return err
		}
		ts += rtpPayloadSize
		start := ts
		for k, dur := range []uint16{400, 800, 1200, 1280, 1280, 1280} {
			seq++
			payload := []byte{eventCode(keys[i]), 10, 0, 0}
			if k >= 3 {
				payload[1] |= 0x80
			}
			binary.BigEndian.PutUint16(payload[2:], dur)
			if err := write(rtp.Packet{Header: rtp.Header{Version: 2, Marker: k == 0, PayloadType: pt, SequenceNumber: seq, Timestamp: start, SSRC: ssrc}, Payload: payload}); err != nil {
				return err
			}
		}
		ts += 1280
	}
	return audio(tail)
}

// waitInfos reads n INFOs the phone receives within d each, and then
// checks that no more arrive within quiet.
func waitInfos(t *testing.T, p *phone, n int, d, quiet time.Duration) []*sip.Request {
	t.Helper()
	var out []*sip.Request
	for len(out) < n {
		select {
		case req := <-p.infos:
			out = append(out, req)
		case <-time.After(d):
			t.Fatalf("phone %s received %d INFOs, want %d", p.User, len(out), n)
		}
	}
	select {
	case req := <-p.infos:
		t.Errorf("phone %s received an INFO more than the %d keys sent:\n%s", p.User, n, req.Body())
	case <-time.After(quiet):
	}
	return out
}

// infoSignal reads Signal from an INFO application/dtmf-relay.
func infoSignal(t *testing.T, req *sip.Request) string {
	t.Helper()
	if ct := req.ContentType(); ct == nil || ct.Value() != "application/dtmf-relay" {
		t.Errorf("INFO Content-Type %v, want application/dtmf-relay", ct)
	}
	for line := range strings.SplitSeq(string(req.Body()), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Signal="); ok {
			return v
		}
	}
	t.Errorf("INFO without Signal:\n%s", req.Body())
	return ""
}

// TestDTMFEventsToInfo: the caller's phone negotiated telephone-event and
// sends the keys "123#" as RFC 4733 events in its RTP; the callee's user
// is in dtmf_mode info, so parley offers it no telephone-event, takes the
// events out of the stream, and sends the callee one INFO per key, in
// order, and no more, though each key's end packet came three times.
func TestDTMFEventsToInfo(t *testing.T) {
	needParley(t)
	p := startParley(t, parleyConfig{Extra: rangeOf(30500).yaml(nil, ""), DTMFModes: map[string]string{"1002": "info"}})
	aSock, bSock := rtpSocketAt(t, 27700), rtpSocketAt(t, 27702)
	caller := dtmfPhone(t, p, "1001", aSock, true)
	callee := dtmfPhone(t, p, "1002", bSock, true)
	callee.mustRegister()
	mc := mustMediaCall(t, caller, callee)
	defer mc.Out.hangup(t)

	if pt, ok := hasEvents(mc.CalleeSees); ok {
		t.Fatalf("the callee in dtmf_mode info was offered telephone-event (payload type %s): %v", pt, mc.CalleeSees.Formats)
	}
	pt, ok := hasEvents(mc.CallerSees)
	if !ok || pt != "101" {
		t.Fatalf("the caller's answer has telephone-event %q (%t); want its own 101 kept though the callee has none: %v", pt, ok, mc.CallerSees.Formats)
	}

	var got []rtpReceived
	var wg sync.WaitGroup
	wg.Go(func() { got = bSock.drain(time.Second) })
	if err := sendKeys(aSock, mc.CallerSees.Addr, 0x1001, 101, "123#", 10); err != nil {
		t.Fatal(err)
	}
	infos := waitInfos(t, callee, 4, 3*time.Second, time.Second)
	var keys strings.Builder
	for _, req := range infos {
		keys.WriteString(infoSignal(t, req))
	}
	if keys.String() != "123#" {
		t.Errorf("callee's INFOs carry %q, want \"123#\", one per key", keys.String())
	}
	wg.Wait()
	audio := 0
	for _, r := range got {
		if r.Pkt.PayloadType == 101 {
			t.Fatalf("the callee, which has no telephone-event, received an event packet: %v", r.Pkt.Header)
		}
		audio++
	}
	if audio < 30 {
		t.Errorf("the callee received %d audio packets, want the caller's 30", audio)
	}
	p.waitMetric(t, 2*time.Second, equals(4), "parley_dtmf_total", "from", "rfc4733", "to", "info")
}

// TestDTMFInfoToEvents: the callee's user is in dtmf_mode info and sends
// keys as SIP INFO; the caller negotiated telephone-event. parley answers
// each INFO itself and sends the caller RFC 4733 events with the caller's
// payload type, in the stream it forwards from the callee: the callee's
// SSRC, sequence numbers that run on without a gap through events and
// audio, the marker on each key's first packet, one timestamp per key,
// the duration growing and three end packets. A body that is no key gets
// 400 with a Warning that says why.
func TestDTMFInfoToEvents(t *testing.T) {
	needParley(t)
	p := startParley(t, parleyConfig{Extra: rangeOf(30600).yaml(nil, ""), DTMFModes: map[string]string{"1002": "info"}})
	aSock, bSock := rtpSocketAt(t, 27710), rtpSocketAt(t, 27712)
	caller := dtmfPhone(t, p, "1001", aSock, true)
	callee := dtmfPhone(t, p, "1002", bSock, false)
	callee.mustRegister()
	mc := mustMediaCall(t, caller, callee)
	defer mc.Out.hangup(t)

	const ssrc = 0x2002
	var got []rtpReceived
	var wg sync.WaitGroup
	wg.Go(func() { got = aSock.drain(time.Second) })
	wg.Go(func() {
		_ = bSock.send(mc.CalleeSees.Addr, rtpStream{Tag: 0xb, SSRC: ssrc, PayloadType: 0, Count: 100, Interval: 20 * time.Millisecond})
	})
	time.Sleep(300 * time.Millisecond) // audio flows first: the keys go in its stream

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	info := func(ct, body string) *sip.Response {
		req := sip.NewRequest(sip.INFO, mc.In.Req.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", ct))
		req.SetBody([]byte(body))
		res, err := mc.In.Call.Session.Do(ctx, req)
		if err != nil {
			t.Fatalf("INFO %q: %v", body, err)
		}
		return res
	}
	for _, key := range []string{"5", "#"} {
		if res := info("application/dtmf-relay", "Signal="+key+"\r\nDuration=160\r\n"); res.StatusCode != 200 {
			t.Fatalf("INFO Signal=%s: %d %s, want 200 from parley", key, res.StatusCode, res.Reason)
		}
	}
	if res := info("application/dtmf", "7"); res.StatusCode != 200 {
		t.Fatalf("INFO application/dtmf 7: %d %s, want 200", res.StatusCode, res.Reason)
	}
	res := info("application/dtmf-relay", "Signal=X\r\nDuration=160\r\n")
	if res.StatusCode != 400 {
		t.Errorf("INFO Signal=X: %d %s, want 400", res.StatusCode, res.Reason)
	} else if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "Signal") {
		t.Errorf("400 to INFO Signal=X has Warning %v; want one naming the Signal", w)
	}
	wg.Wait()
	if caller.infos != nil && len(caller.infos) > 0 {
		t.Errorf("the caller, which uses events, received %d INFOs", len(caller.infos))
	}

	// Every packet is the callee's stream; sequence numbers run on by one.
	var keys []byte
	var evTS uint32
	var durs []uint16
	ends := 0
	for i, r := range got {
		h := r.Pkt.Header
		if h.SSRC != ssrc {
			t.Fatalf("packet %d has SSRC %#x, want the callee's stream %#x", i, h.SSRC, ssrc)
		}
		if i > 0 && h.SequenceNumber != got[i-1].Pkt.SequenceNumber+1 {
			t.Errorf("packet %d: sequence %d after %d: the stream is not continuous", i, h.SequenceNumber, got[i-1].Pkt.SequenceNumber)
		}
		if h.PayloadType != 101 {
			continue
		}
		pl := r.Pkt.Payload
		if len(pl) != 4 {
			t.Fatalf("event packet %d has a %d-byte payload", i, len(pl))
		}
		dur, end := binary.BigEndian.Uint16(pl[2:]), pl[1]&0x80 != 0
		if h.Marker {
			if len(keys) > 0 && ends != 3 {
				t.Errorf("key %c had %d end packets, want 3", keys[len(keys)-1], ends)
			}
			keys, evTS, durs, ends = append(keys, keyOf(pl[0])), h.Timestamp, nil, 0
		} else if h.Timestamp != evTS {
			t.Errorf("event packet %d: timestamp %d, the key started at %d", i, h.Timestamp, evTS)
		}
		if len(durs) > 0 && dur < durs[len(durs)-1] {
			t.Errorf("event packet %d: duration %d after %d", i, dur, durs[len(durs)-1])
		}
		durs = append(durs, dur)
		if end {
			ends++
			if dur != 1280 {
				t.Errorf("end packet of key %c: duration %d, want 1280 (160 ms)", keys[len(keys)-1], dur)
			}
		}
	}
	if ends != 3 {
		t.Errorf("last key had %d end packets, want 3", ends)
	}
	if string(keys) != "5#7" {
		t.Errorf("caller received the keys %q as events, want \"5#7\"", keys)
	}
	p.waitMetric(t, 2*time.Second, equals(3), "parley_dtmf_total", "from", "info", "to", "rfc4733")
}

// TestDTMFSameMode: both phones negotiated telephone-event, so events pass
// in the RTP as they came and nothing becomes an INFO.
func TestDTMFSameMode(t *testing.T) {
	needParley(t)
	p := startParley(t, parleyConfig{Extra: rangeOf(30700).yaml(nil, "")})
	aSock, bSock := rtpSocketAt(t, 27720), rtpSocketAt(t, 27722)
	caller := dtmfPhone(t, p, "1001", aSock, true)
	callee := dtmfPhone(t, p, "1002", bSock, true)
	callee.mustRegister()
	mc := mustMediaCall(t, caller, callee)
	defer mc.Out.hangup(t)
	if _, ok := hasEvents(mc.CalleeSees); !ok {
		t.Fatalf("the callee in auto mode was not offered the caller's telephone-event: %v", mc.CalleeSees.Formats)
	}

	var got []rtpReceived
	var wg sync.WaitGroup
	wg.Go(func() { got = bSock.drain(time.Second) })
	if err := sendKeys(aSock, mc.CallerSees.Addr, 0x3003, 101, "9", 5); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	events := 0
	for _, r := range got {
		if r.Pkt.PayloadType == 101 {
			events++
		}
	}
	if events != 6 {
		t.Errorf("callee received %d event packets, want the caller's 6 as they were", events)
	}
	select {
	case req := <-callee.infos:
		t.Errorf("callee got an INFO though both phones use events:\n%s", req.Body())
	default:
	}
	if v, ok := p.scrapeMetrics(t).get("parley_dtmf_total"); ok && v != 0 {
		t.Errorf("parley_dtmf_total = %v with nothing converted", v)
	}
}

// Relay blocks and phone RTP ports of the DTMF tests with real phones.
var (
	rangeDTMFLinphoneCalls = rtpRange{30800, 30849}
	rangeDTMFBaresipCalls  = rtpRange{30850, 30899}

	portsDTMFLinphone   = phonePorts{27740, 27759}
	portsDTMFBaresip    = phonePorts{27760, 27779}
	portsDTMFBaresipOut = phonePorts{27780, 27799}
	portsDTMFLinphoneIn = phonePorts{27800, 27819}
)

// linphoneInfo makes linphonec send keys as SIP INFO (dtmf-relay), not
// RFC 4733.
const linphoneInfo = "use_info=1\nuse_rfc2833=0\n"

// TestDTMFLinphoneInfoToBaresip: linphonec, configured to send keys as SIP
// INFO (it then offers no telephone-event), calls baresip, whose user is
// in dtmf_mode rfc4733: parley offers baresip telephone-event all the
// same, answers each INFO itself and sends the key to baresip as RFC 4733
// events. Each key typed at linphonec's prompt during the call arrives
// once at baresip (its CALL_DTMF_START reports).
func TestDTMFLinphoneInfoToBaresip(t *testing.T) {
	needParley(t)
	needBaresip(t)
	needPackage(t, "linphonec", "linphone-cli")
	pl := startParley(t, parleyConfig{Extra: rangeDTMFLinphoneCalls.yaml(nil, ""), DTMFModes: map[string]string{"1002": "rfc4733"}})
	callee := startBaresip(t, pl, baresipConfig{Name: "callee", User: "1002", Source: "ausine,440", RTP: portsDTMFBaresip})
	caller := startLinphoneWith(t, pl, "caller", "1003", portsDTMFLinphone, linphoneInfo)
	caller.send(t, "soundcard use files")
	caller.waitOutput(t, "Using wav files instead of soundcard", phoneEvent)

	from := callee.eventCount()
	caller.send(t, "call sip:1002@parley.lab")
	caller.waitOutput(t, "Media streams established", phoneEvent)
	callee.waitEvent(t, from, "CALL_ESTABLISHED", peerIs("1003"))
	waitCallState(t, pl, "active", phoneEvent)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(1)), "parley_rtp_packets_total")

	const keys = "147#"
	at := callee.eventCount()
	var got strings.Builder
	for i := range len(keys) {
		caller.send(t, keys[i:i+1])
		ev, n := callee.waitEvent(t, at, "CALL_DTMF_START", nil)
		got.WriteString(ev.Param)
		at = n + 1
	}
	if got.String() != keys {
		t.Errorf("linphone typed %q; baresip received %q", keys, got.String())
	}
	pl.waitMetric(t, phoneEvent, equals(float64(len(keys))), "parley_dtmf_total", "from", "info", "to", "rfc4733")
	// Exactly once: no key more comes after the last.
	time.Sleep(time.Second)
	if n := countEvents(callee, "CALL_DTMF_START"); n != len(keys) {
		t.Errorf("baresip reported %d keys, linphone typed %d", n, len(keys))
	}
	if log := readFileOrErr(caller.LogPath); !strings.Contains(log, "dtmf-relay") {
		t.Errorf("linphone's log shows no INFO dtmf-relay sent; it was configured to send INFO")
	}

	caller.send(t, "terminate")
	callee.waitEvent(t, from, "CALL_CLOSED", nil)
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
}

// TestDTMFBaresipToInfoUser: baresip sends keys as RFC 4733 events only;
// it calls linphonec, whose user is in dtmf_mode info. parley offers
// linphone no telephone-event, takes baresip's events out of the RTP and
// sends linphone one INFO per key, which it reports once each.
func TestDTMFBaresipToInfoUser(t *testing.T) {
	needParley(t)
	needBaresip(t)
	needPackage(t, "linphonec", "linphone-cli")
	pl := startParley(t, parleyConfig{Extra: rangeDTMFBaresipCalls.yaml(nil, ""), DTMFModes: map[string]string{"1003": "info"}})
	callee := startLinphoneWith(t, pl, "callee", "1003", portsDTMFLinphoneIn, linphoneInfo)
	callee.send(t, "soundcard use files")
	callee.waitOutput(t, "Using wav files instead of soundcard", phoneEvent)
	caller := startBaresip(t, pl, baresipConfig{Name: "caller", User: "1001", Source: "ausine,440", RTP: portsDTMFBaresipOut})

	from := caller.eventCount()
	caller.command(t, "dial", "1003")
	callee.waitOutput(t, "Receiving new incoming call", phoneEvent)
	callee.send(t, "answer")
	caller.waitEvent(t, from, "CALL_ESTABLISHED", nil)
	waitCallState(t, pl, "active", phoneEvent)
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(1)), "parley_rtp_packets_total")

	const keys = "2580"
	caller.command(t, "sndcode", keys)
	pl.waitMetric(t, phoneEvent, equals(float64(len(keys))), "parley_dtmf_total", "from", "rfc4733", "to", "info")
	deadline := time.Now().Add(phoneEvent)
	var got string
	for {
		got = receivedTones(readFileOrErr(callee.OutPath))
		if len(got) >= len(keys) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a key more would show by now
	if got = receivedTones(readFileOrErr(callee.OutPath)); got != keys {
		t.Errorf("baresip sent %q; linphone reported receiving %q", keys, got)
	}

	caller.command(t, "hangup", "")
	caller.waitEvent(t, from, "CALL_CLOSED", nil)
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
}

// receivedTones is the keys linphonec printed as received, in order.
func receivedTones(out string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(out, "\n") {
		if _, rest, ok := strings.Cut(line, "Receiving tone "); ok && rest != "" {
			b.WriteByte(rest[0])
		}
	}
	return b.String()
}

// countEvents counts the events of type typ baresip reported so far.
func countEvents(b *baresip, typ string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// TestDTMFAfterRestart: a call between a phone with telephone-event and a
// user in dtmf_mode info survives parley's kill -9 and restart from its
// checkpoint, and goes on converting: the caller's RFC 4733 keys reach the
// callee as INFOs, each once, in the callee's dialog as restored.
func TestDTMFAfterRestart(t *testing.T) {
	needParley(t)
	rng := rtpRange{30950, 30999}
	p := startParley(t, parleyConfig{
		StorePath: t.TempDir(),
		Extra:     rng.yaml(nil, "") + "sessions: {checkpoint: true}\n",
		DTMFModes: map[string]string{"1002": "info"},
	})
	aSock, bSock := rtpSocketAt(t, 27730), rtpSocketAt(t, 27732)
	caller := dtmfPhone(t, p, "1001", aSock, true)
	callee := dtmfPhone(t, p, "1002", bSock, false)
	callee.mustRegister()
	mc := mustMediaCall(t, caller, callee)
	if err := sendKeys(aSock, mc.CallerSees.Addr, 0x4004, 101, "1", 2); err != nil {
		t.Fatal(err)
	}
	first := waitInfos(t, callee, 1, 3*time.Second, 300*time.Millisecond)[0]
	if got := infoSignal(t, first); got != "1" {
		t.Fatalf("before the restart the callee got key %q, want 1", got)
	}
	time.Sleep(500 * time.Millisecond) // the checkpoint after the INFO reaches the store

	p.kill9(t)
	p.restart(t, 2)
	if n := len(p.apiCalls(t)); n != 1 {
		t.Fatalf("restarted parley holds %d calls, want 1", n)
	}
	if err := sendKeys(aSock, mc.CallerSees.Addr, 0x4004, 101, "*0", 5); err != nil {
		t.Fatal(err)
	}
	infos := waitInfos(t, callee, 2, 3*time.Second, time.Second)
	var keys strings.Builder
	for _, req := range infos {
		keys.WriteString(infoSignal(t, req))
	}
	if keys.String() != "*0" {
		t.Errorf("after the restart the callee's INFOs carry %q, want \"*0\"", keys.String())
	}
	if c0, c1, c2 := first.CSeq().SeqNo, infos[0].CSeq().SeqNo, infos[1].CSeq().SeqNo; c1 != c0+1 || c2 != c1+1 {
		t.Errorf("INFO CSeqs %d before the restart, %d and %d after; want them to follow each other (the leg's CSeq checkpointed)", c0, c1, c2)
	}
	mc.Out.hangup(t)
}
