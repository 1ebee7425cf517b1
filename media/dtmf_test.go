package media

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// dtmfTestPorts is the relay range of the DTMF tests, apart from the
// others' so that a port lingering from one never meets another.
const dtmfTestPorts = 30900

// eventPacket is an RFC 4733 packet of payload type 101.
func eventPacket(t testing.TB, ssrc uint32, seq uint16, ts uint32, marker bool, code byte, end bool, dur uint16) []byte {
	t.Helper()
	pl := []byte{code, 10, 0, 0}
	if end {
		pl[1] |= 0x80
	}
	binary.BigEndian.PutUint16(pl[2:], dur)
	p := rtp.Packet{Header: rtp.Header{Version: 2, Marker: marker, PayloadType: 101, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: pl}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readRTP reads one RTP packet on c within a second.
func readRTP(t testing.TB, c *net.UDPConn) rtp.Packet {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("%v: waiting for RTP: %v", addrOf(c), err)
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventBridgeFor opens a bridge between phones a and c where side A
// negotiated telephone-event 101 and side B none.
func eventBridgeFor(t *testing.T, r *Relay, a, c *net.UDPConn) *Bridge {
	b := openBridge(t, r)
	b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	b.SetEvents([2]int{101, -1}, [2]int{8000, 8000})
	return b
}

// TestBridgeEventsReported: events from a side whose other side has no
// telephone-event are taken out of the stream and reported once per key,
// in order, whatever the retransmissions of its end packet; a key whose end
// packets were all lost is reported when the next key starts. Audio passes.
func TestBridgeEventsReported(t *testing.T) {
	r, _ := startRelay(t, dtmfTestPorts, 2)
	a, c := relayPeer(t), relayPeer(t)
	b := eventBridgeFor(t, r, a, c)
	got := make(chan Event, 10)
	b.OnEvent(func(from Side, ev Event) {
		if from != SideA {
			t.Errorf("key from the %v", from)
		}
		got <- ev
	})

	to := bridgeAddr(b, SideA, false)
	seq := uint16(10)
	send := func(pkt []byte) { sendTo(t, a, to, pkt); seq++ }
	audio := func(ts uint32) {
		pkt := relayRTP(t, 7, seq, ts, make([]byte, 160))
		send(pkt)
		expect(t, c, pkt, bridgeAddr(b, SideB, false))
	}
	audio(1000)
	// Key 1: three end packets, as phones send them.
	for i, dur := range []uint16{400, 800, 800, 800} {
		send(eventPacket(t, 7, seq, 1160, i == 0, 1, i > 0, dur))
	}
	audio(2000)
	// Key # (11): its end packets are lost; key 9 follows.
	send(eventPacket(t, 7, seq, 2160, true, 11, false, 400))
	send(eventPacket(t, 7, seq, 2160, false, 11, false, 1200))
	send(eventPacket(t, 7, seq, 3000, true, 9, false, 400))
	send(eventPacket(t, 7, seq, 3000, false, 9, true, 1600))
	send(eventPacket(t, 7, seq, 3000, false, 9, true, 1600))
	audio(4000)

	want := []Event{{1, 100 * time.Millisecond}, {11, 150 * time.Millisecond}, {9, 200 * time.Millisecond}}
	for i, w := range want {
		select {
		case ev := <-got:
			if ev != w {
				t.Errorf("key %d: %+v, want %+v", i, ev, w)
			}
		case <-time.After(time.Second):
			t.Fatalf("key %d never reported", i)
		}
	}
	select {
	case ev := <-got:
		t.Errorf("a key more than sent: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
	expectNothing(t, c) // no event reached the side without telephone-event
}

// TestBridgeSendEvent: a key sent to a side goes in the stream forwarded
// to it: its SSRC, sequence numbers on from the last forwarded, the
// marker on the first packet, one timestamp, the duration growing to the
// key's, three end packets; later forwarded packets are moved up by the
// packets injected.
func TestBridgeSendEvent(t *testing.T) {
	r, _ := startRelay(t, dtmfTestPorts, 2)
	a, c := relayPeer(t), relayPeer(t)
	b := eventBridgeFor(t, r, a, c)
	from := bridgeAddr(b, SideB, false)

	for i := range 3 {
		pkt := relayRTP(t, 0xc0de, uint16(100+i), uint32(8000+160*i), make([]byte, 160))
		sendTo(t, c, from, pkt)
		expect(t, a, pkt, bridgeAddr(b, SideA, false))
	}
	if err := b.SendEvent(SideA, Event{Code: 5, Duration: 160 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var evTS uint32
	durs := []uint16{400, 800, 1200, 1280, 1280, 1280, 1280}
	for i, dur := range durs {
		p := readRTP(t, a)
		h := p.Header
		if h.PayloadType != 101 || h.SSRC != 0xc0de || h.SequenceNumber != uint16(103+i) || h.Marker != (i == 0) {
			t.Fatalf("event packet %d: %+v; want payload type 101, SSRC 0xc0de, sequence %d, marker %t", i, h, 103+i, i == 0)
		}
		if i == 0 {
			evTS = h.Timestamp
			if int32(evTS-8320) < 0 {
				t.Errorf("event timestamp %d before the stream's last %d", evTS, 8320)
			}
		} else if h.Timestamp != evTS {
			t.Errorf("event packet %d: timestamp %d, want the key's %d", i, h.Timestamp, evTS)
		}
		pl := p.Payload
		if pl[0] != 5 || binary.BigEndian.Uint16(pl[2:]) != dur || (pl[1]&0x80 != 0) != (i >= 4) {
			t.Errorf("event packet %d: payload % x; want key 5, duration %d, end %t", i, pl, dur, i >= 4)
		}
	}
	pkt := relayRTP(t, 0xc0de, 103, 8480, make([]byte, 160))
	sendTo(t, c, from, pkt)
	p := readRTP(t, a)
	if p.SequenceNumber != 103+uint16(len(durs)) {
		t.Errorf("audio after the key has sequence %d, want %d (moved up by the %d injected)", p.SequenceNumber, 103+len(durs), len(durs))
	}
}

// TestBridgeSendEventLimits: a side without telephone-event is sent no
// key, and keys past the rate limit are refused and counted.
func TestBridgeSendEventLimits(t *testing.T) {
	r, _ := startRelay(t, dtmfTestPorts, 2)
	a, c := relayPeer(t), relayPeer(t)
	b := eventBridgeFor(t, r, a, c)
	if err := b.SendEvent(SideB, Event{Code: 1}); !errors.Is(err, ErrNoEvents) {
		t.Errorf("key to the side without events: %v, want ErrNoEvents", err)
	}
	if err := b.SendEvent(SideA, Event{Code: 17}); !errors.Is(err, ErrBadEvent) {
		t.Errorf("event code 17: %v, want ErrBadEvent", err)
	}
	refused := 0
	for range maxEventsPerSecond + 5 {
		if err := b.SendEvent(SideA, Event{Code: 1, Duration: time.Second}); errors.Is(err, ErrEventRate) {
			refused++
		}
	}
	if refused != 5 || b.DTMFDropped() != 5 {
		t.Errorf("%d keys refused, %d counted; want the 5 past %d", refused, b.DTMFDropped(), maxEventsPerSecond)
	}
	b.Close() // stops the keys still queued
}

// TestBridgeNoConversion: where both sides negotiated telephone-event,
// events pass untouched and nothing is converted.
func TestBridgeNoConversion(t *testing.T) {
	r, _ := startRelay(t, dtmfTestPorts, 2)
	a, c := relayPeer(t), relayPeer(t)
	b := openBridge(t, r)
	b.SetPeer(SideA, addrOf(a), netip.AddrPort{}, false)
	b.SetPeer(SideB, addrOf(c), netip.AddrPort{}, false)
	b.SetEvents([2]int{101, 101}, [2]int{8000, 8000})
	b.OnEvent(func(Side, Event) { t.Error("a key reported where both sides use events") })
	if b.convert {
		t.Error("the bridge converts where both sides use events")
	}
	pkt := eventPacket(t, 1, 1, 160, true, 3, true, 800)
	sendTo(t, a, bridgeAddr(b, SideA, false), pkt)
	expect(t, c, pkt, bridgeAddr(b, SideB, false))
}

// sdpWith is a PCMU offer or answer with payload types pts for RTP at
// 127.0.0.1:port, 101 being telephone-event.
func sdpWith(port int, version int, pts ...string) []byte {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 " + strconv.Itoa(version) + " IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n")
	b.WriteString("m=audio " + strconv.Itoa(port) + " RTP/AVP " + strings.Join(pts, " ") + "\r\n")
	for _, pt := range pts {
		switch pt {
		case "0":
			b.WriteString("a=rtpmap:0 PCMU/8000\r\n")
		case "101":
			b.WriteString("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
		}
	}
	b.WriteString("a=sendrecv\r\n")
	return []byte(b.String())
}

// eventsIn returns the telephone-event payload type of an SDP's audio, or
// "" for none.
func eventsIn(t *testing.T, body []byte) string {
	t.Helper()
	sd, err := parseSDP(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range offeredFormats(sd.MediaDescriptions[0]) {
		if f.matches(TelephoneEvent) {
			return strconv.Itoa(int(f.pt))
		}
	}
	return ""
}

// TestSessionDTMFModes: what each side is offered and answered of
// telephone-event, per its DTMF mode, and which sides end up using events.
func TestSessionDTMFModes(t *testing.T) {
	tests := []struct {
		name             string
		modeA, modeB     DTMFMode
		offerA, answerB  []string
		toB, toA         string // telephone-event in parley's offer to B, answer to A
		eventsA, eventsB bool
	}{
		{"auto both", DTMFAuto, DTMFAuto, []string{"0", "101"}, []string{"0", "101"}, "101", "101", true, true},
		{"callee info", DTMFAuto, DTMFInfo, []string{"0", "101"}, []string{"0"}, "", "101", true, false},
		{"callee lacks it", DTMFAuto, DTMFAuto, []string{"0", "101"}, []string{"0"}, "101", "101", true, false},
		{"caller info", DTMFInfo, DTMFAuto, []string{"0", "101"}, []string{"0", "101"}, "101", "", false, true},
		{"callee rfc4733, caller lacks it", DTMFAuto, DTMFEvents, []string{"0"}, []string{"0", "101"}, "101", "", false, true},
		{"callee auto, caller lacks it", DTMFAuto, DTMFAuto, []string{"0"}, []string{"0"}, "", "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestSession(t, relayAddr, defaultPrefs)
			s.SetDTMFMode(SideA, tc.modeA)
			s.SetDTMFMode(SideB, tc.modeB)
			off, err := s.Offer(SideA, sdpWith(4000, 1, tc.offerA...))
			if err != nil {
				t.Fatal(err)
			}
			if got := eventsIn(t, off); got != tc.toB {
				t.Errorf("offer to the callee has telephone-event %q, want %q:\n%s", got, tc.toB, off)
			}
			ans, err := s.Answer(SideB, sdpWith(5000, 1, tc.answerB...))
			if err != nil {
				t.Fatal(err)
			}
			if got := eventsIn(t, ans); got != tc.toA {
				t.Errorf("answer to the caller has telephone-event %q, want %q:\n%s", got, tc.toA, ans)
			}
			if s.UsesEvents(SideA) != tc.eventsA || s.UsesEvents(SideB) != tc.eventsB {
				t.Errorf("uses events: caller %t callee %t, want %t %t", s.UsesEvents(SideA), s.UsesEvents(SideB), tc.eventsA, tc.eventsB)
			}
		})
	}
}

// TestDTMFSurvivesRestore: a call whose caller uses events and whose
// callee, in dtmf_mode info, does not, is checkpointed and restored; the
// restored session and its bridge still convert, and a later re-offer
// still follows the callee's mode.
func TestDTMFSurvivesRestore(t *testing.T) {
	pool := newPool(t, dtmfTestPorts+20, 4)
	r, _ := runRelay(t, pool, loopback)
	ss, err := NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss.New()
	if err != nil {
		t.Fatal(err)
	}
	s.SetDTMFMode(SideB, DTMFInfo)
	if _, err := s.Offer(SideA, sdpWith(4000, 1, "0", "101")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(SideB, sdpWith(5000, 1, "0")); err != nil {
		t.Fatal(err)
	}
	data, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = ss.Restore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.UsesEvents(SideA) || s.UsesEvents(SideB) {
		t.Errorf("restored: uses events caller %t callee %t, want true false", s.UsesEvents(SideA), s.UsesEvents(SideB))
	}
	br := s.br.(*Bridge)
	if br.Events(SideA) != 101 || br.Events(SideB) != -1 || !br.convert {
		t.Errorf("restored bridge: events %d %d convert %t, want 101 -1 true", br.Events(SideA), br.Events(SideB), br.convert)
	}
	// The callee's mode came back too: its re-offer with telephone-event
	// still leaves it without events.
	off, err := s.Offer(SideB, sdpWith(5000, 2, "0", "101"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(SideA, sdpWith(4000, 2, "0", "101")); err != nil {
		t.Fatal(err)
	}
	if s.UsesEvents(SideB) {
		t.Errorf("the callee in dtmf_mode info uses events after a re-offer on the restored call (offer to the caller:\n%s)", off)
	}
}

// TestEventsOfferedPerClock: a callee in rfc4733 whose caller offered no
// telephone-event is offered one per codec clock rate, on free payload
// types, 101 first, so that it can keep the one at its codec's rate.
func TestEventsOfferedPerClock(t *testing.T) {
	s, _ := newTestSession(t, relayAddr, defaultPrefs)
	s.SetDTMFMode(SideB, DTMFEvents)
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 96 0\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
	out, err := s.Offer(SideA, []byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	sd, err := parseSDP(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]uint8{}
	for _, f := range offeredFormats(sd.MediaDescriptions[0]) {
		if f.matches(TelephoneEvent) {
			got[f.clock] = f.pt
		}
	}
	if len(got) != 2 || got[48000] != 101 || got[8000] != 97 {
		t.Errorf("telephone-event offered by clock rate %v, want 48000 on 101 and 8000 on 97:\n%s", got, out)
	}
}

// TestBridgeSendEventClosed: a closed bridge sends nothing, and a bridge
// whose sides agree keeps no conversion state.
func TestBridgeSendEventClosed(t *testing.T) {
	r, _ := startRelay(t, dtmfTestPorts, 2)
	b := openBridge(t, r)
	b.SetEvents([2]int{101, 101}, [2]int{8000, 8000})
	if b.dtmf != nil || b.convert {
		t.Error("a bridge whose sides both use events keeps conversion state")
	}
	b.Close()
	if err := b.SendEvent(SideA, Event{Code: 1}); !errors.Is(err, ErrRelayClosed) {
		t.Errorf("key to a closed bridge: %v, want ErrRelayClosed", err)
	}
}
