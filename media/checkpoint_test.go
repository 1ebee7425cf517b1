package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pion/sdp/v3"
)

// Port ranges of the checkpoint tests, away from those of the other tests.
const (
	checkpointRestorePorts = 25000
	checkpointErrorPorts   = 25100
	checkpointMovePorts    = 25200
	checkpointMoveToPorts  = 25300
	checkpointSamePorts    = 25400
)

// newFakeSessions returns Sessions on fake bridges, which Restore opens on
// the ports asked for and New and Move on 20002 and 30002.
func newFakeSessions(t *testing.T, addr netip.Addr) *Sessions {
	t.Helper()
	open := func() (bridge, error) {
		fb := newFakeBridge()
		fb.ports = [2]int{20002, 30002}
		return fb, nil
	}
	openAt := func(ports [2]int) (bridge, error) {
		fb := newFakeBridge()
		fb.ports = ports
		return fb, nil
	}
	ss, err := NewSessions(open, addr, defaultPrefs, withOpenAt(openAt))
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// runSteps feeds steps to s and returns what parley sent on for each.
func runSteps(t *testing.T, s *Session, steps []step) {
	t.Helper()
	for _, st := range steps {
		var err error
		if st.offer {
			_, err = s.Offer(st.from, readB2B(t, st.file))
		} else {
			_, err = s.Answer(st.from, readB2B(t, st.file))
		}
		if err != nil {
			t.Fatalf("%v from the %v: %v", st.file, st.from, err)
		}
	}
}

// lastCall returns the last of calls that starts with prefix, or "".
func lastCall(calls []string, prefix string) string {
	for _, c := range slices.Backward(calls) {
		if strings.HasPrefix(c, prefix) {
			return c
		}
	}
	return ""
}

// TestRestoreBehavesAsBefore restores a checkpoint of a call and checks that
// the restored session tells its bridge what the original's was told last,
// and then answers every later offer and answer exactly as the original.
func TestRestoreBehavesAsBefore(t *testing.T) {
	latched := [2][2]netip.AddrPort{
		{netip.MustParseAddrPort("198.51.100.1:4000"), netip.MustParseAddrPort("198.51.100.1:4001")},
		{netip.MustParseAddrPort("198.51.100.2:5000"), {}},
	}
	tests := []struct {
		name          string
		before, after []step
	}{
		{
			name: "sipp",
			before: []step{
				offerFrom(SideA, "sipp_uac_offer.sdp"),
				answerFrom(SideB, "sipp_uas_answer.sdp"),
			},
			after: []step{
				// Unchanged: the versions stay.
				offerFrom(SideA, "sipp_uac_offer.sdp"),
				answerFrom(SideB, "sipp_uas_answer.sdp"),
				offerFrom(SideA, "hold_sendonly_offer.sdp"),
				answerFrom(SideB, "hold_recvonly_answer.sdp"),
			},
		},
		{
			name: "on_hold",
			before: []step{
				offerFrom(SideA, "sipp_uac_offer.sdp"),
				answerFrom(SideB, "sipp_uas_answer.sdp"),
				offerFrom(SideA, "hold_sendonly_offer.sdp"),
				answerFrom(SideB, "hold_recvonly_answer.sdp"),
			},
			after: []step{
				offerFrom(SideA, "hold_sendonly_offer.sdp"),
				answerFrom(SideB, "hold_recvonly_answer.sdp"),
				offerFrom(SideA, "resume_offer.sdp"),
				answerFrom(SideB, "sipp_uas_answer.sdp"),
			},
		},
		{
			name: "baresip_rtcp_mux",
			before: []step{
				offerFrom(SideA, "baresip_offer.sdp"),
				answerFrom(SideB, "baresip_answer.sdp"),
			},
			after: []step{
				offerFrom(SideA, "baresip_offer.sdp"),
				answerFrom(SideB, "baresip_answer.sdp"),
			},
		},
		{
			name: "late_offer",
			before: []step{
				offerFrom(SideB, "late_offer_callee.sdp"),
				answerFrom(SideA, "late_answer_caller.sdp"),
			},
			after: []step{
				offerFrom(SideB, "late_offer_callee.sdp"),
				answerFrom(SideA, "late_answer_caller.sdp"),
				offerFrom(SideA, "sipp_uac_offer.sdp"),
				answerFrom(SideB, "sipp_uas_answer.sdp"),
			},
		},
		{
			name: "audio_video",
			before: []step{
				offerFrom(SideA, "audio_video_offer.sdp"),
				answerFrom(SideB, "audio_video_answer.sdp"),
			},
			after: []step{
				offerFrom(SideA, "audio_video_offer.sdp"),
				answerFrom(SideB, "audio_video_answer.sdp"),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig, ofb := newTestSession(t, relayAddr, defaultPrefs)
			runSteps(t, orig, tc.before)
			ofb.latched = latched
			data, err := orig.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}

			ss := newFakeSessions(t, relayAddr)
			s, err := ss.Restore(data)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fb := s.br.(*fakeBridge)
			if fb.ports != ofb.ports {
				t.Errorf("restored on ports %v, want %v", fb.ports, ofb.ports)
			}
			if fb.latched != latched {
				t.Errorf("latched %v, want %v", fb.latched, latched)
			}

			history := ofb.take()
			want := []string{
				lastCall(history, "SetPeer caller"),
				fmt.Sprintf("SetLatched caller %v %v", latched[SideA][0], latched[SideA][1]),
				lastCall(history, "SetPeer callee"),
				fmt.Sprintf("SetLatched callee %v %v", latched[SideB][0], latched[SideB][1]),
				lastCall(history, "SetClockRate caller"),
				lastCall(history, "SetClockRate callee"),
			}
			if orig.OnHold() {
				want = append(want, "SetHold true")
			}
			if got := fb.take(); !slices.Equal(got, want) {
				t.Errorf("restoring told the bridge\n %q\nwant\n %q", got, want)
			}

			for _, side := range []Side{SideA, SideB} {
				if got, want := s.Current(side), orig.Current(side); !bytes.Equal(got, want) {
					t.Errorf("Current(%v):\n%s\nwant:\n%s", side, got, want)
				}
			}
			if s.OnHold() != orig.OnHold() || s.Codec() != orig.Codec() {
				t.Errorf("hold %t codec %q, want %t %q", s.OnHold(), s.Codec(), orig.OnHold(), orig.Codec())
			}
			// Each side's last SDP is a refresh; the others are not.
			for _, st := range slices.Concat(tc.before, tc.after) {
				body := readB2B(t, st.file)
				if got, want := s.Unchanged(st.from, body), orig.Unchanged(st.from, body); got != want {
					t.Errorf("Unchanged(%v, %s) = %t, the original says %t", st.from, st.file, got, want)
				}
			}
			last := tc.before[len(tc.before)-1]
			if !s.Unchanged(last.from, readB2B(t, last.file)) {
				t.Errorf("the %v's last SDP is not unchanged after the restore", last.from)
			}

			for _, st := range tc.after {
				var got, want []byte
				var gotErr, wantErr error
				body := readB2B(t, st.file)
				if st.offer {
					got, gotErr = s.Offer(st.from, body)
					want, wantErr = orig.Offer(st.from, body)
				} else {
					got, gotErr = s.Answer(st.from, body)
					want, wantErr = orig.Answer(st.from, body)
				}
				if gotErr != nil || wantErr != nil {
					t.Fatalf("%s from the %v: restored %v, original %v", st.file, st.from, gotErr, wantErr)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s from the %v: restored sends\n%s\nthe original\n%s", st.file, st.from, got, want)
				}
				if got, want := fb.take(), ofb.take(); !slices.Equal(got, want) {
					t.Errorf("%s from the %v: restored bridge told %q, the original %q", st.file, st.from, got, want)
				}
				if s.OnHold() != orig.OnHold() || s.Codec() != orig.Codec() {
					t.Errorf("%s: hold %t codec %q, want %t %q", st.file, s.OnHold(), s.Codec(), orig.OnHold(), orig.Codec())
				}
			}
		})
	}
}

// TestCheckpointJSON checks the checkpoint's keys, which stores keep across
// versions of parley.
func TestCheckpointJSON(t *testing.T) {
	s, fb := newTestSession(t, relayAddr, defaultPrefs)
	runSteps(t, s, []step{offerFrom(SideA, "baresip_offer.sdp"), answerFrom(SideB, "baresip_answer.sdp")})
	fb.latched[SideA] = [2]netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:4000"), netip.MustParseAddrPort("198.51.100.1:4001")}
	data, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(top)), []string{"clock", "codec", "mux", "ports", "sides"}; !slices.Equal(got, want) {
		t.Errorf("keys %q, want %q", got, want)
	}
	var sides [2]map[string]json.RawMessage
	if err := json.Unmarshal(top["sides"], &sides); err != nil {
		t.Fatal(err)
	}
	// baresip offers telephone-event, which the caller keeps (dtmf_sdp.go).
	want := []string{"event_clock", "event_pt", "events", "has_seen", "id", "latched_rtcp", "latched_rtp", "peer_mux", "peer_rtcp", "peer_rtp", "seen", "sent", "version"}
	if got := slices.Sorted(maps.Keys(sides[SideA])); !slices.Equal(got, want) {
		t.Errorf("caller's keys %q, want %q", got, want)
	}
	var seen map[string]json.RawMessage
	if err := json.Unmarshal(sides[SideA]["seen"], &seen); err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(seen)), []string{"addr", "id", "user", "version"}; !slices.Equal(got, want) {
		t.Errorf("seen's keys %q, want %q", got, want)
	}

	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	a := st.Sides[SideA]
	if st.Ports != [2]int{20000, 30000} || st.Codec != "opus" || st.Clock != 48000 || !st.Mux || st.Hold ||
		a.ID != 111 || a.Version != 1 || a.PeerRTP != "192.168.1.10:10028" || a.PeerRTCP != "192.168.1.10:10028" || !a.PeerMux ||
		a.LatchedRTP != "198.51.100.1:4000" || a.LatchedRTCP != "198.51.100.1:4001" ||
		!a.HasSeen || a.Seen != (OriginState{User: "-", ID: 1580329473, Version: 2076373102, Addr: "192.168.1.10"}) ||
		a.Sent != string(s.Current(SideA)) || st.Sides[SideB].LatchedRTP != "" {
		t.Errorf("state %+v", st)
	}
}

func TestStateWithOfferPending(t *testing.T) {
	s, _ := newTestSession(t, relayAddr, defaultPrefs)
	runSteps(t, s, []step{offerFrom(SideA, "sipp_uac_offer.sdp")})
	if _, err := s.State(); !errors.Is(err, ErrOfferPending) {
		t.Errorf("State: %v, want ErrOfferPending", err)
	}
	if _, err := s.Checkpoint(); !errors.Is(err, ErrOfferPending) {
		t.Errorf("Checkpoint: %v, want ErrOfferPending", err)
	}
	runSteps(t, s, []step{answerFrom(SideB, "sipp_uas_answer.sdp")})
	if _, err := s.Checkpoint(); err != nil {
		t.Errorf("Checkpoint after the answer: %v", err)
	}
}

func TestRestoreBadCheckpoint(t *testing.T) {
	s, _ := newTestSession(t, relayAddr, defaultPrefs)
	runSteps(t, s, []step{offerFrom(SideA, "sipp_uac_offer.sdp"), answerFrom(SideB, "sipp_uas_answer.sdp")})
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	mangle := func(f func(*SessionState)) []byte {
		c := st
		f(&c)
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ss := newFakeSessions(t, relayAddr)
	for name, data := range map[string][]byte{
		"garbage":        []byte("not json"),
		"empty":          nil,
		"wrong_type":     []byte(`{"ports":"20000"}`),
		"sent_without_o": mangle(func(c *SessionState) { c.Sides[SideA].Sent = "v=0\r\n" }),
		"wrong_version":  mangle(func(c *SessionState) { c.Sides[SideB].Version = 7 }),
		"bad_peer":       mangle(func(c *SessionState) { c.Sides[SideB].PeerRTP = "somewhere" }),
		"bad_latched":    mangle(func(c *SessionState) { c.Sides[SideA].LatchedRTCP = "10.0.0.1" }),
	} {
		if s, err := ss.Restore(data); err == nil {
			s.Close()
			t.Errorf("%s: Restore succeeded", name)
		}
		if s, err := ss.Move(data); err == nil {
			s.Close()
			t.Errorf("%s: Move succeeded", name)
		}
	}

	// Sessions whose bridges cannot be opened on given ports restore none.
	plain, err := NewSessions(func() (bridge, error) { return newFakeBridge(), nil }, relayAddr, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Restore(mangle(func(*SessionState) {})); err == nil {
		t.Error("Restore without openAt succeeded")
	}
}

// TestMoveAndReoffered moves a call to new ports and another address, then
// takes each phone's answer to the re-INVITE.
func TestMoveAndReoffered(t *testing.T) {
	orig, ofb := newTestSession(t, relayAddr, defaultPrefs)
	runSteps(t, orig, []step{offerFrom(SideA, "sipp_uac_offer.sdp"), answerFrom(SideB, "sipp_uas_answer.sdp")})
	ofb.latched[SideA] = [2]netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:4000"), netip.MustParseAddrPort("198.51.100.1:4001")}
	ofb.latched[SideB] = [2]netip.AddrPort{netip.MustParseAddrPort("198.51.100.2:5000"), netip.MustParseAddrPort("198.51.100.2:5001")}
	data, err := orig.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}

	other := netip.MustParseAddr("192.0.2.2")
	s, err := newFakeSessions(t, other).Move(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fb := s.br.(*fakeBridge)
	for _, side := range []Side{SideA, SideB} {
		id := []uint64{111, 222}[side]
		want := strings.NewReplacer(
			fmt.Sprintf("o=parley %d 1 IN IP4 192.0.2.1", id), fmt.Sprintf("o=parley %d 2 IN IP4 192.0.2.2", id),
			"c=IN IP4 192.0.2.1", "c=IN IP4 192.0.2.2",
			fmt.Sprintf("m=audio %d ", ofb.ports[side]), fmt.Sprintf("m=audio %d ", fb.ports[side]),
		).Replace(string(orig.Current(side)))
		if got := string(s.Current(side)); got != want || got == string(orig.Current(side)) {
			t.Errorf("Current(%v) after the move:\n%s\nwant:\n%s", side, got, want)
		}
	}
	if fb.latched != ofb.latched {
		t.Errorf("latched %v, want %v", fb.latched, ofb.latched)
	}
	fb.take()

	// The caller answers the re-INVITE from where it was: its latched
	// source stays.
	answerA := bytes.Replace(readB2B(t, "sipp_uac_offer.sdp"), []byte("2353687637"), []byte("2353687640"), 1)
	if s.Unchanged(SideA, answerA) {
		t.Error("the caller's new SDP is unchanged before Reoffered")
	}
	if err := s.Reoffered(SideA, answerA); err != nil {
		t.Fatal(err)
	}
	if !s.Unchanged(SideA, answerA) || s.Unchanged(SideA, readB2B(t, "sipp_uac_offer.sdp")) {
		t.Error("Unchanged does not know the caller's answer to the re-offer")
	}
	if calls := fb.take(); len(calls) != 0 || fb.latched[SideA] != ofb.latched[SideA] {
		t.Errorf("the same address told the bridge %q; latched %v", calls, fb.latched[SideA])
	}

	// The callee answers from a new port: its latched source goes.
	answerB := bytes.Replace(readB2B(t, "sipp_uas_answer.sdp"), []byte("m=audio 6002"), []byte("m=audio 6010"), 1)
	answerB = bytes.Replace(answerB, []byte("2353687637"), []byte("2353687640"), 1)
	if err := s.Reoffered(SideB, answerB); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.take(), []string{"SetPeer callee 127.0.2.1:6010 127.0.2.1:6011 mux=false"}; !slices.Equal(got, want) {
		t.Errorf("a new address told the bridge %q, want %q", got, want)
	}
	if fb.latched[SideB] != ([2]netip.AddrPort{}) {
		t.Errorf("callee still latched to %v", fb.latched[SideB])
	}
	if !s.Unchanged(SideB, answerB) {
		t.Error("Unchanged does not know the callee's answer")
	}

	// What parley re-offered stands: the caller's next offer, the same
	// media, reaches the callee with the moved SDP's version.
	reoffer := bytes.Replace(readB2B(t, "sipp_uac_offer.sdp"), []byte("2353687637"), []byte("2353687641"), 1)
	moved := s.Current(SideB)
	out, err := s.Offer(SideA, reoffer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, moved) {
		t.Errorf("unchanged re-offer after the move:\n%s\nwant:\n%s", out, moved)
	}

	for _, tc := range []struct {
		name   string
		body   []byte
		err    error
		status int
	}{
		{"malformed", readB2B(t, "malformed_offer.sdp"), ErrBadSDP, 400},
		{"empty", nil, ErrBadSDP, 400},
		{"refused", readB2B(t, "refused_answer.sdp"), ErrNoCommonCodec, 488},
	} {
		err := s.Reoffered(SideA, tc.body)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			continue
		}
		checkStatus(t, err, tc.status)
	}
	if err := s.Reoffered(Side(5), answerA); err == nil {
		t.Error("Reoffered from side 5 succeeded")
	}
}

// TestReofferedKeepsRTCPMux checks that an answer repeating rtcp-mux and the
// address keeps the latched source.
func TestReofferedKeepsRTCPMux(t *testing.T) {
	s, fb := newTestSession(t, relayAddr, defaultPrefs)
	runSteps(t, s, []step{offerFrom(SideA, "baresip_offer.sdp"), answerFrom(SideB, "baresip_answer.sdp")})
	fb.take()
	src := netip.MustParseAddrPort("198.51.100.1:4000")
	fb.latched[SideB] = [2]netip.AddrPort{src, {}}
	answer := bytes.Replace(readB2B(t, "baresip_answer.sdp"), []byte(" 1 IN IP4"), []byte(" 2 IN IP4"), 1)
	if err := s.Reoffered(SideB, answer); err != nil {
		t.Fatal(err)
	}
	if calls := fb.take(); len(calls) != 0 || fb.latched[SideB][0] != src {
		t.Errorf("told the bridge %q; latched %v", calls, fb.latched[SideB])
	}
	// Without rtcp-mux RTCP goes elsewhere: a new peer.
	noMux := bytes.Replace(answer, []byte("a=rtcp-mux\r\n"), nil, 1)
	if bytes.Equal(noMux, answer) {
		noMux = bytes.Replace(answer, []byte("a=rtcp-mux\n"), nil, 1)
	}
	if err := s.Reoffered(SideB, noMux); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.take(), []string{"SetPeer callee 192.168.1.11:10040 192.168.1.11:10041 mux=false"}; !slices.Equal(got, want) {
		t.Errorf("told the bridge %q, want %q", got, want)
	}
}

func TestPortPoolTake(t *testing.T) {
	p, err := NewPortPool(10000, 10007) // 10000, 10002, 10004, 10006
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Take(10004); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		port int
		err  error
	}{
		{10004, ErrPortTaken},
		{10005, ErrPortNotInPool},
		{10008, ErrPortNotInPool},
		{9998, ErrPortNotInPool},
		{0, ErrPortNotInPool},
	} {
		if err := p.Take(tc.port); !errors.Is(err, tc.err) {
			t.Errorf("Take(%d): %v, want %v", tc.port, err, tc.err)
		}
	}
	if p.InUse() != 1 {
		t.Errorf("InUse = %d, want 1", p.InUse())
	}
	var got []int
	for {
		port, err := p.Acquire()
		if err != nil {
			break
		}
		got = append(got, port)
	}
	if want := []int{10000, 10002, 10006}; !slices.Equal(got, want) {
		t.Errorf("Acquire handed out %v, want %v", got, want)
	}
	if err := p.Take(10000); !errors.Is(err, ErrPortTaken) {
		t.Errorf("Take of an acquired port: %v", err)
	}
	p.Release(10004)
	if err := p.Take(10004); err != nil {
		t.Errorf("Take after Release: %v", err)
	}
}

// runRelay runs a relay over pool on addr until stop, or the end of the
// test, and checks that Run then returns nil.
func runRelay(t *testing.T, pool *PortPool, addr netip.Addr) (r *Relay, stop func()) {
	t.Helper()
	r, err := NewRelay(pool, addr, WithRelayWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func newPool(t *testing.T, first, pairs int) *PortPool {
	t.Helper()
	pool, err := NewPortPool(first, first+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// natPhone is a phone behind NAT: its SDP names one address (sdpAt), but its
// RTP comes from another (conn), where the relay must send once it latched.
type natPhone struct {
	conn, sdpAt *net.UDPConn
}

func newNATPhone(t *testing.T) natPhone {
	return natPhone{conn: relayPeer(t), sdpAt: relayPeer(t)}
}

// sdp is the phone's SDP with o= version version.
func (p natPhone) sdp(version uint64) []byte {
	return phoneSDP(version, addrOf(p.sdpAt))
}

func phoneSDP(version uint64, at netip.AddrPort) []byte {
	return fmt.Appendf(nil, "v=0\r\no=phone 4242 %d IN IP4 %v\r\ns=-\r\nc=IN IP4 %v\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
		version, at.Addr(), at.Addr(), at.Port())
}

// relayCall opens a session on ss for a call from a to b, with the bridge
// latched to both phones' real sources.
func relayCall(t *testing.T, ss *Sessions, a, b natPhone, addr netip.Addr) *Session {
	t.Helper()
	s, err := ss.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Offer(SideA, a.sdp(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(SideB, b.sdp(1)); err != nil {
		t.Fatal(err)
	}
	portA, portB := relayPort(s, SideA, addr), relayPort(s, SideB, addr)
	// The callee has not sent yet: the caller's RTP goes where its SDP says.
	pkt := relayRTP(t, 1, 1, 160, []byte("a1"))
	sendTo(t, a.conn, portA, pkt)
	expect(t, b.sdpAt, pkt, portB)
	pkt = relayRTP(t, 2, 1, 160, []byte("b1"))
	sendTo(t, b.conn, portB, pkt)
	expect(t, a.conn, pkt, portA)
	pkt = relayRTP(t, 1, 2, 320, []byte("a2"))
	sendTo(t, a.conn, portA, pkt)
	expect(t, b.conn, pkt, portB)
	return s
}

func relayPort(s *Session, side Side, addr netip.Addr) netip.AddrPort {
	return netip.AddrPortFrom(addr, uint16(s.br.Port(side)))
}

// checkFlows checks that RTP goes from each phone to the other's real
// source through s at addr, before the receiving phone sends, and nothing to
// the addresses their SDP named.
func checkFlows(t *testing.T, s *Session, a, b natPhone, addr netip.Addr) {
	t.Helper()
	portA, portB := relayPort(s, SideA, addr), relayPort(s, SideB, addr)
	pkt := relayRTP(t, 1, 100, 16000, []byte("to the callee"))
	sendTo(t, a.conn, portA, pkt)
	expect(t, b.conn, pkt, portB)
	pkt = relayRTP(t, 2, 100, 16000, []byte("to the caller"))
	sendTo(t, b.conn, portB, pkt)
	expect(t, a.conn, pkt, portA)
	expectNothing(t, a.sdpAt)
	expectNothing(t, b.sdpAt)
}

// TestRestoreOnNewRelay checkpoints a call, ends the relay's process (its
// sockets close) and restores the call on a new relay: same ports, same SDP,
// and media flows to both phones before either sends again.
func TestRestoreOnNewRelay(t *testing.T) {
	pool := newPool(t, checkpointRestorePorts, 4)
	r, stop := runRelay(t, pool, loopback)
	ss, err := NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newNATPhone(t), newNATPhone(t)
	s := relayCall(t, ss, a, b, loopback)
	data, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	ports := [2]int{s.br.Port(SideA), s.br.Port(SideB)}
	current := [2][]byte{s.Current(SideA), s.Current(SideB)}
	s.Close()
	stop()
	if pool.InUse() != 0 {
		t.Fatalf("%d ports in use after the relay stopped", pool.InUse())
	}

	pool = newPool(t, checkpointRestorePorts, 4)
	r, _ = runRelay(t, pool, loopback)
	ss, err = NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	s, err = ss.Restore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := [2]int{s.br.Port(SideA), s.br.Port(SideB)}; got != ports {
		t.Errorf("restored on ports %v, want %v", got, ports)
	}
	for _, side := range []Side{SideA, SideB} {
		if got := s.Current(side); !bytes.Equal(got, current[side]) {
			t.Errorf("Current(%v):\n%s\nwant:\n%s", side, got, current[side])
		}
	}
	if !s.Unchanged(SideA, a.sdp(1)) || !s.Unchanged(SideB, b.sdp(1)) {
		t.Error("the phones' SDP is not unchanged after the restore")
	}
	if s.Unchanged(SideA, a.sdp(2)) {
		t.Error("a new version is unchanged")
	}
	if s.Codec() != "PCMU" || s.OnHold() {
		t.Errorf("codec %q, hold %t", s.Codec(), s.OnHold())
	}
	if pool.InUse() != 2 || r.InUse() != 1 {
		t.Errorf("%d ports and %d bridges in use, want 2 and 1", pool.InUse(), r.InUse())
	}
	checkFlows(t, s, a, b, loopback)
}

// TestRestoreOnSameRelay restores a closed call on the relay that still
// runs, reusing the ports' parked sockets; a phone that comes back from a
// new source is latched again.
func TestRestoreOnSameRelay(t *testing.T) {
	pool := newPool(t, checkpointSamePorts, 2)
	r, _ := runRelay(t, pool, loopback)
	ss, err := NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newNATPhone(t), newNATPhone(t)
	s := relayCall(t, ss, a, b, loopback)
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
	checkFlows(t, s, a, b, loopback)

	// Restored again, the latches are tentative until each side sends: the
	// caller's NAT maps it anew, and its first packet from there latches.
	s.Close()
	s, err = ss.Restore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	portA, portB := relayPort(s, SideA, loopback), relayPort(s, SideB, loopback)
	mapped := relayPeer(t)
	pkt := relayRTP(t, 3, 1, 160, []byte("from the new source"))
	sendTo(t, mapped, portA, pkt)
	expect(t, b.conn, pkt, portB)
	pkt = relayRTP(t, 2, 200, 32000, []byte("back to it"))
	sendTo(t, b.conn, portB, pkt)
	expect(t, mapped, pkt, portA)
	expectNothing(t, a.conn)
	// Now firm: the old source is dropped.
	sendTo(t, a.conn, portA, relayRTP(t, 1, 300, 48000, []byte("stale")))
	expectNothing(t, b.conn)
}

// TestRestoreFails checks that Restore refuses ports it cannot have and
// then holds on to nothing.
func TestRestoreFails(t *testing.T) {
	pool := newPool(t, checkpointErrorPorts, 5)
	r, _ := runRelay(t, pool, loopback)
	ss, err := NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newNATPhone(t), newNATPhone(t)
	s := relayCall(t, ss, a, b, loopback)
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	var free []int
	for port := checkpointErrorPorts; port < checkpointErrorPorts+10; port += 2 {
		if port != st.Ports[SideA] && port != st.Ports[SideB] {
			free = append(free, port)
		}
	}
	// Another program holds the RTCP port of one of them.
	held, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(free[1]+1))))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	at := func(ports [2]int) []byte {
		c := st
		c.Ports = ports
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name string
		data []byte
		err  error
	}{
		{"in_use", at(st.Ports), ErrPortTaken},
		{"callee_port_in_use", at([2]int{free[0], st.Ports[SideB]}), ErrPortTaken},
		{"same_port_twice", at([2]int{free[0], free[0]}), ErrPortTaken},
		{"bound_elsewhere", at([2]int{free[0], free[1]}), ErrPortTaken},
		{"outside_the_pool", at([2]int{checkpointErrorPorts + 100, free[0]}), ErrPortNotInPool},
		{"odd", at([2]int{free[0], free[0] + 1}), ErrPortNotInPool},
		{"garbage", []byte("{not json"), nil},
	}
	for _, tc := range tests {
		got, err := ss.Restore(tc.data)
		if err == nil {
			got.Close()
			t.Errorf("%s: Restore succeeded", tc.name)
			continue
		}
		if tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		if pool.InUse() != 2 || r.InUse() != 1 {
			t.Errorf("%s: %d ports and %d bridges in use after the failure, want 2 and 1", tc.name, pool.InUse(), r.InUse())
		}
	}
	// The ports that failed are free for the next call.
	got, err := ss.Restore(at([2]int{free[0], free[2]}))
	if err != nil {
		t.Fatalf("Restore on free ports: %v", err)
	}
	got.Close()
}

// TestMoveToAnotherNode moves a call to a relay of another address, as a
// node taking it over does: new ports, each phone's re-INVITE SDP carries
// them, and media flows to both phones at once.
func TestMoveToAnotherNode(t *testing.T) {
	pool := newPool(t, checkpointMovePorts, 2)
	r, _ := runRelay(t, pool, loopback)
	ss, err := NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newNATPhone(t), newNATPhone(t)
	old := relayCall(t, ss, a, b, loopback)
	data, err := old.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	old.Close() // the old node is gone

	node := netip.MustParseAddr("127.0.0.2")
	r2, _ := runRelay(t, newPool(t, checkpointMoveToPorts, 2), node)
	ss2, err := NewRelaySessions(r2, node, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss2.Move(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, side := range []Side{SideA, SideB} {
		if s.br.Port(side) == old.br.Port(side) {
			t.Errorf("the %v keeps port %d", side, s.br.Port(side))
		}
		var was, now sdp.SessionDescription
		if err := was.Unmarshal(old.Current(side)); err != nil {
			t.Fatal(err)
		}
		if err := now.Unmarshal(s.Current(side)); err != nil {
			t.Fatalf("moved SDP for the %v does not parse: %v", side, err)
		}
		if o := now.Origin; o.SessionID != was.Origin.SessionID || o.SessionVersion != was.Origin.SessionVersion+1 || o.UnicastAddress != "127.0.0.2" {
			t.Errorf("the %v's o= %+v, was %+v", side, o, was.Origin)
		}
		if c := now.ConnectionInformation; c == nil || c.Address.Address != "127.0.0.2" {
			t.Errorf("the %v's c= %+v", side, c)
		}
		if p := now.MediaDescriptions[0].MediaName.Port.Value; p != s.br.Port(side) {
			t.Errorf("the %v's m=audio port %d, want %d", side, p, s.br.Port(side))
		}
	}
	checkFlows(t, s, a, b, node)

	// The caller answers its re-INVITE from the same address: the latch
	// holds, and the answer is its SDP now.
	if err := s.Reoffered(SideA, a.sdp(2)); err != nil {
		t.Fatal(err)
	}
	if !s.Unchanged(SideA, a.sdp(2)) || s.Unchanged(SideA, a.sdp(1)) {
		t.Error("Unchanged does not know the caller's answer")
	}
	portA, portB := relayPort(s, SideA, node), relayPort(s, SideB, node)
	pkt := relayRTP(t, 2, 500, 80000, []byte("still latched"))
	sendTo(t, b.conn, portB, pkt)
	expect(t, a.conn, pkt, portA)
	expectNothing(t, a.sdpAt)

	// The callee answers with a new address: media goes there until the
	// callee sends.
	elsewhere := relayPeer(t)
	if err := s.Reoffered(SideB, phoneSDP(2, addrOf(elsewhere))); err != nil {
		t.Fatal(err)
	}
	pkt = relayRTP(t, 1, 500, 80000, []byte("to the new address"))
	sendTo(t, a.conn, portA, pkt)
	expect(t, elsewhere, pkt, portB)
	expectNothing(t, b.conn)
}
