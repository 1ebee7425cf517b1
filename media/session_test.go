package media

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
)

// fakeBridge stands in for the relay's Bridge and records what a Session
// tells it.
type fakeBridge struct {
	ports [2]int
	fams  [2]Family
	done  chan struct{}

	mu      sync.Mutex
	calls   []string
	closed  int
	latched [2][2]netip.AddrPort // per side: RTP's and RTCP's source
}

func newFakeBridge() *fakeBridge {
	return &fakeBridge{ports: [2]int{20000, 30000}, done: make(chan struct{})}
}

func (b *fakeBridge) record(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf(format, args...))
}

// take returns the calls recorded since the last take.
func (b *fakeBridge) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls
	b.calls = nil
	return c
}

func (b *fakeBridge) Port(s Side) int      { return b.ports[s] }
func (b *fakeBridge) Family(s Side) Family { return b.fams[s] }
func (b *fakeBridge) SetPeer(s Side, rtp, rtcp netip.AddrPort, mux bool) {
	b.record("SetPeer %v %v %v mux=%t", s, rtp, rtcp, mux)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.latched[s] = [2]netip.AddrPort{} // as the relay's bridge forgets them
}
func (b *fakeBridge) Latched(s Side) (rtp, rtcp netip.AddrPort) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.latched[s][0], b.latched[s][1]
}
func (b *fakeBridge) SetLatched(s Side, rtp, rtcp netip.AddrPort) {
	b.record("SetLatched %v %v %v", s, rtp, rtcp)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.latched[s] = [2]netip.AddrPort{rtp, rtcp}
}
func (b *fakeBridge) SetSRTP(s Side, keys *SRTPKeys) error {
	if keys != nil { // plain RTP, told on every answer, is not recorded
		b.record("SetSRTP %v %s", s, keys.Remote.suite.name)
	}
	return nil
}
func (b *fakeBridge) PhoneChanged(s Side, d time.Duration) {
	b.record("PhoneChanged %v %v", s, d)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.latched[s] = [2]netip.AddrPort{}
}
func (b *fakeBridge) SetHold(onHold bool)         { b.record("SetHold %t", onHold) }
func (b *fakeBridge) SetClockRate(s Side, hz int) { b.record("SetClockRate %v %d", s, hz) }
func (b *fakeBridge) Stats() BridgeStats {
	return BridgeStats{A: SideStats{Packets: 1}, B: SideStats{Packets: 2}}
}
func (b *fakeBridge) Done() <-chan struct{} { return b.done }
func (b *fakeBridge) OnIdle(f func()) {
	go func() {
		<-b.done
		f()
	}()
}
func (b *fakeBridge) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed++
	return nil
}

var relayAddr = netip.MustParseAddr("192.0.2.1")

// newTestSession returns a Session on a fake bridge whose o= session ids are
// 111 towards the caller and 222 towards the callee.
func newTestSession(t testing.TB, addr netip.Addr, prefs []string) (*Session, *fakeBridge) {
	t.Helper()
	fb := newFakeBridge()
	ss, err := NewSessions(func() (bridge, error) { return fb, nil }, addr, prefs)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	ss.newID = func() uint64 { n += 111; return n }
	s, err := ss.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fb
}

func readB2B(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "b2b", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// step is one offer or answer arriving at parley, and what must follow.
type step struct {
	offer bool // else an answer
	from  Side
	file  string

	err    error // the error it must give, if any
	status int   // and that error's SIP status

	version uint64   // the o= version of what parley sends on
	calls   []string // what the bridge is told, in order
	hold    bool     // OnHold afterwards
	codec   string   // Codec afterwards
}

func offerFrom(from Side, file string) step  { return step{offer: true, from: from, file: file} }
func answerFrom(from Side, file string) step { return step{from: from, file: file} }

func (s step) v(version uint64) step             { s.version = version; return s }
func (s step) does(calls ...string) step         { s.calls = calls; return s }
func (s step) then(codec string, hold bool) step { s.codec, s.hold = codec, hold; return s }
func (s step) fails(err error, status int) step {
	s.err, s.status = err, status
	return s
}

const (
	clock8k  = "SetClockRate caller 8000"
	clock8kB = "SetClockRate callee 8000"
)

func TestSessionOfferAnswer(t *testing.T) {
	sippA := "SetPeer caller 127.0.1.1:6000 127.0.1.1:6001 mux=false"
	sippB := "SetPeer callee 127.0.2.1:6002 127.0.2.1:6003 mux=false"
	sippCall := []step{
		offerFrom(SideA, "sipp_uac_offer.sdp").v(1).does(sippA),
		answerFrom(SideB, "sipp_uas_answer.sdp").v(1).does(sippB, clock8k, clock8kB).then("PCMU", false),
	}
	tests := []struct {
		name  string
		addr  netip.Addr
		prefs []string
		steps []step
	}{
		{
			name: "sipp",
			steps: append(slices.Clone(sippCall),
				// An unchanged re-offer and answer keep their versions.
				offerFrom(SideA, "sipp_uac_offer.sdp").v(1).does(sippA).then("PCMU", false),
				answerFrom(SideB, "sipp_uas_answer.sdp").v(1).does(sippB, clock8k, clock8kB).then("PCMU", false),
			),
		},
		{
			name: "baresip_opus_rtcp_mux",
			steps: []step{
				offerFrom(SideA, "baresip_offer.sdp").v(1).
					does("SetPeer caller 192.168.1.10:10028 192.168.1.10:10029 mux=false"),
				answerFrom(SideB, "baresip_answer.sdp").v(1).does(
					"SetPeer caller 192.168.1.10:10028 192.168.1.10:10028 mux=true",
					"SetPeer callee 192.168.1.11:10040 192.168.1.11:10040 mux=true",
					"SetClockRate caller 48000", "SetClockRate callee 48000").then("opus", false),
				// Once agreed, a re-offer keeps rtcp-mux.
				offerFrom(SideA, "baresip_offer.sdp").v(1).
					does("SetPeer caller 192.168.1.10:10028 192.168.1.10:10028 mux=true").then("opus", false),
				answerFrom(SideB, "baresip_answer.sdp").v(1).does(
					"SetPeer callee 192.168.1.11:10040 192.168.1.11:10040 mux=true",
					"SetClockRate caller 48000", "SetClockRate callee 48000").then("opus", false),
			},
		},
		{
			name: "baresip_to_gateway_a_rtcp",
			steps: []step{
				offerFrom(SideA, "baresip_offer.sdp").v(1).
					does("SetPeer caller 192.168.1.10:10028 192.168.1.10:10029 mux=false"),
				answerFrom(SideB, "pcma_rtcp_answer.sdp").v(1).does(
					"SetPeer callee 198.51.100.20:40000 198.51.100.21:40011 mux=false",
					clock8k, clock8kB).then("PCMA", false),
			},
		},
		{
			name: "linphone",
			steps: []step{
				offerFrom(SideA, "linphone_offer.sdp").v(1).
					does("SetPeer caller 192.168.1.20:7078 192.168.1.20:7079 mux=false"),
				answerFrom(SideB, "linphone_answer.sdp").v(1).does(
					"SetPeer callee 192.168.1.30:7080 192.168.1.30:7081 mux=false",
					clock8k, clock8kB).then("PCMU", false),
			},
		},
		{
			name: "linphone_prefers_pcma",
			// The offerer's order stands; prefs only say what may pass.
			prefs: []string{"PCMA", "PCMU"},
			steps: []step{
				offerFrom(SideA, "linphone_offer.sdp").v(1).
					does("SetPeer caller 192.168.1.20:7078 192.168.1.20:7079 mux=false"),
			},
		},
		{
			name: "audio_video",
			steps: []step{
				offerFrom(SideA, "audio_video_offer.sdp").v(1).
					does("SetPeer caller 10.0.0.6:49170 10.0.0.6:49171 mux=false"),
				answerFrom(SideB, "audio_video_answer.sdp").v(1).does(
					"SetPeer callee 10.0.1.5:50000 10.0.1.5:50001 mux=false",
					clock8k, clock8kB).then("PCMA", false),
			},
		},
		{
			name: "late_offer",
			steps: []step{
				offerFrom(SideB, "late_offer_callee.sdp").v(1).
					does("SetPeer callee 203.0.113.50:16000 203.0.113.50:16001 mux=false"),
				answerFrom(SideA, "late_answer_caller.sdp").v(1).does(
					"SetPeer caller 198.51.100.9:18000 198.51.100.9:18001 mux=false",
					clock8k, clock8kB).then("PCMA", false),
			},
		},
		{
			name: "hold_resume",
			steps: append(slices.Clone(sippCall),
				offerFrom(SideA, "hold_sendonly_offer.sdp").v(2).does(sippA).then("PCMU", false),
				answerFrom(SideB, "hold_recvonly_answer.sdp").v(2).
					does(sippB, clock8k, clock8kB, "SetHold true").then("PCMU", true),
				offerFrom(SideA, "hold_inactive_offer.sdp").v(3).does(sippA).then("PCMU", true),
				answerFrom(SideB, "hold_inactive_answer.sdp").v(3).
					does(sippB, clock8k, clock8kB).then("PCMU", true),
				// c=0.0.0.0: the caller wants nothing sent to it.
				offerFrom(SideA, "hold_zero_offer.sdp").v(4).
					does("SetPeer caller 0.0.0.0:6000 0.0.0.0:6001 mux=false").then("PCMU", true),
				answerFrom(SideB, "hold_recvonly_answer.sdp").v(4).
					does(sippB, clock8k, clock8kB).then("PCMU", true),
				offerFrom(SideA, "resume_offer.sdp").v(5).
					does("SetPeer caller 127.0.1.1:6004 127.0.1.1:6005 mux=false").then("PCMU", true),
				answerFrom(SideB, "sipp_uas_answer.sdp").v(5).
					does(sippB, clock8k, clock8kB, "SetHold false").then("PCMU", false),
			),
		},
		{
			name: "callee_holds",
			steps: append(slices.Clone(sippCall),
				offerFrom(SideB, "callee_hold_offer.sdp").v(2).does(sippB).then("PCMU", false),
				answerFrom(SideA, "caller_hold_answer.sdp").v(2).does(
					"SetPeer caller 127.0.1.1:6004 127.0.1.1:6005 mux=false",
					clock8k, clock8kB, "SetHold true").then("PCMU", true),
			),
		},
		{
			name: "ipv6",
			addr: netip.MustParseAddr("2001:db8::1"),
			steps: []step{
				offerFrom(SideA, "ipv6_offer.sdp").v(1).
					does("SetPeer caller [2001:db8::2]:5004 [2001:db8::2]:5005 mux=false"),
				answerFrom(SideB, "ipv6_answer.sdp").v(1).does(
					"SetPeer callee [2001:db8::3]:5006 [2001:db8::3]:5007 mux=false",
					clock8k, clock8kB).then("G722", false),
			},
		},
		{
			name: "nothing_in_common",
			steps: []step{
				offerFrom(SideA, "no_common_offer.sdp").fails(ErrNoCommonCodec, 488),
			},
		},
		{
			name:  "only_telephone_event_allowed_in_common",
			prefs: []string{"G722", "telephone-event"},
			steps: []step{
				offerFrom(SideA, "sipp_uac_offer.sdp").fails(ErrNoCommonCodec, 488),
			},
		},
		{
			name: "malformed",
			steps: []step{
				offerFrom(SideA, "malformed_offer.sdp").fails(ErrBadSDP, 400),
				// A good offer after a bad one goes through.
				offerFrom(SideA, "sipp_uac_offer.sdp").v(1).does(sippA),
				answerFrom(SideB, "malformed_offer.sdp").fails(ErrBadSDP, 400),
			},
		},
		{
			name: "answer_refuses_audio",
			steps: []step{
				offerFrom(SideA, "sipp_uac_offer.sdp").v(1).does(sippA),
				answerFrom(SideB, "refused_answer.sdp").fails(ErrNoCommonCodec, 488),
				// The offer still waits for its answer.
				answerFrom(SideB, "sipp_uas_answer.sdp").v(1).does(sippB, clock8k, clock8kB).then("PCMU", false),
			},
		},
		{
			name: "answer_with_nothing_offered",
			steps: []step{
				offerFrom(SideA, "baresip_offer.sdp").v(1).
					does("SetPeer caller 192.168.1.10:10028 192.168.1.10:10029 mux=false"),
				answerFrom(SideB, "no_common_answer.sdp").fails(ErrNoCommonCodec, 488),
			},
		},
		{
			name: "answer_remaps_payload_type",
			steps: []step{
				offerFrom(SideA, "sipp_uac_offer.sdp").v(1).does(sippA),
				answerFrom(SideB, "remapped_answer.sdp").fails(ErrNoCommonCodec, 488),
			},
		},
		{
			name: "answer_without_offer",
			steps: []step{
				answerFrom(SideB, "sipp_uas_answer.sdp").fails(errNoOffer, 0),
				offerFrom(SideA, "sipp_uac_offer.sdp").v(1).does(sippA),
				// The offerer cannot answer its own offer.
				answerFrom(SideA, "sipp_uas_answer.sdp").fails(errNoOffer, 0),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, prefs := tc.addr, tc.prefs
			if !addr.IsValid() {
				addr = relayAddr
			}
			if prefs == nil {
				prefs = defaultPrefs
			}
			s, fb := newTestSession(t, addr, prefs)
			// offers holds the last offer each side made, to check answers
			// against.
			var offers [2][]byte
			for i, st := range tc.steps {
				kind := "answer"
				if st.offer {
					kind = "offer"
				}
				name := fmt.Sprintf("%d_%s_%s", i+1, kind, st.from)
				in := readB2B(t, st.file)
				var out []byte
				var err error
				if st.offer {
					out, err = s.Offer(st.from, in)
				} else {
					out, err = s.Answer(st.from, in)
				}
				calls := fb.take()
				if st.err != nil {
					if !errors.Is(err, st.err) {
						t.Fatalf("%s: err = %v, want %v; sent:\n%s", name, err, st.err, out)
					}
					checkStatus(t, err, st.status)
					if len(calls) != 0 {
						t.Errorf("%s: a failed %s told the bridge %q", name, kind, calls)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !slices.Equal(calls, st.calls) {
					t.Errorf("%s: bridge calls\n got %q\nwant %q", name, calls, st.calls)
				}
				if got := s.OnHold(); got != st.hold {
					t.Errorf("%s: OnHold = %t, want %t", name, got, st.hold)
				}
				if got := s.Codec(); got != st.codec {
					t.Errorf("%s: Codec = %q, want %q", name, got, st.codec)
				}

				to := st.from.Other()
				offer := in
				if st.offer {
					offers[st.from] = in
				} else {
					offer = offers[to]
				}
				checkRelayed(t, name, s, fb, addr, to, offer, out, st.version)
				compareGolden(t, filepath.Join("testdata", "b2b", "golden", tc.name+"_"+name+".sdp"), out)
			}
		})
	}
}

func checkStatus(t *testing.T, err error, want int) {
	t.Helper()
	se, ok := err.(interface{ SIPStatus() (int, string) })
	if want == 0 {
		if ok {
			t.Errorf("%v has a SIP status", err)
		}
		return
	}
	if !ok {
		t.Fatalf("%T has no SIPStatus", err)
	}
	if code, _ := se.SIPStatus(); code != want {
		t.Errorf("status %d, want %d", code, want)
	}
}

// checkRelayed checks what parley sends to side to: its own o=, c= and port,
// one m-line per offered one, and in the relayed stream only payload types
// the offer (offer, to an offer; the one it answers, to an answer) gave for
// the same codec.
func checkRelayed(t *testing.T, name string, s *Session, fb *fakeBridge, addr netip.Addr, to Side, offer, out []byte, version uint64) {
	t.Helper()
	var off, got sdp.SessionDescription
	if err := off.Unmarshal(offer); err != nil {
		t.Fatal(err)
	}
	if err := got.Unmarshal(out); err != nil {
		t.Fatalf("%s: parley's SDP does not parse: %v\n%s", name, err, out)
	}
	wantID := uint64(111)
	if to == SideB {
		wantID = 222
	}
	if o := got.Origin; o.Username != "parley" || o.SessionID != wantID || o.SessionVersion != version || o.UnicastAddress != addr.String() {
		t.Errorf("%s: o= %+v, want parley %d %d %v", name, o, wantID, version, addr)
	}
	if got.ConnectionInformation == nil || got.ConnectionInformation.Address.Address != addr.String() {
		t.Errorf("%s: c= %+v, want %v", name, got.ConnectionInformation, addr)
	}
	if string(got.SessionName) != "parley" {
		t.Errorf("%s: s=%s", name, got.SessionName)
	}
	if len(got.MediaDescriptions) != len(off.MediaDescriptions) {
		t.Fatalf("%s: %d m-lines, the offer has %d", name, len(got.MediaDescriptions), len(off.MediaDescriptions))
	}
	relayed := 0
	for i, md := range got.MediaDescriptions {
		om := off.MediaDescriptions[i]
		if md.MediaName.Media != om.MediaName.Media || !slices.Equal(md.MediaName.Protos, om.MediaName.Protos) {
			t.Errorf("%s: m-line %d is %v, the offer's %v", name, i, md.MediaName, om.MediaName)
		}
		if len(md.MediaName.Formats) == 0 {
			t.Errorf("%s: m-line %d has no format", name, i)
		}
		if md.MediaName.Port.Value == 0 {
			continue
		}
		relayed++
		if md.MediaName.Port.Value != fb.Port(to) {
			t.Errorf("%s: m-line %d port %d, want %d", name, i, md.MediaName.Port.Value, fb.Port(to))
		}
		offered := map[uint8]format{}
		for _, f := range offeredFormats(om) {
			offered[f.pt] = f
		}
		for _, f := range offeredFormats(md) {
			o, ok := offered[f.pt]
			if !ok {
				t.Errorf("%s: payload type %d (%s) was not offered", name, f.pt, f.name)
				continue
			}
			if !strings.EqualFold(o.name, f.name) || o.clock != f.clock {
				t.Errorf("%s: payload type %d is %s/%d, offered as %s/%d", name, f.pt, f.name, f.clock, o.name, o.clock)
			}
		}
		if _, ok := md.Attribute("rtcp"); ok {
			t.Errorf("%s: m-line %d passes on a=rtcp", name, i)
		}
	}
	if relayed != 1 {
		t.Errorf("%s: %d streams relayed, want 1", name, relayed)
	}
}

func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}

func TestSessionEmptyAndBadSide(t *testing.T) {
	s, _ := newTestSession(t, relayAddr, defaultPrefs)
	if _, err := s.Offer(SideA, nil); !errors.Is(err, ErrBadSDP) {
		t.Errorf("empty offer: %v", err)
	}
	if _, err := s.Answer(SideB, []byte("  \r\n")); !errors.Is(err, ErrBadSDP) {
		t.Errorf("empty answer: %v", err)
	}
	if _, err := s.Offer(Side(7), readB2B(t, "sipp_uac_offer.sdp")); err == nil {
		t.Error("offer from side 7 accepted")
	}
}

// TestSessionConcurrent lets the race detector look at a session used from
// several goroutines, as dialog's transactions may.
func TestSessionConcurrent(t *testing.T) {
	s, _ := newTestSession(t, relayAddr, defaultPrefs)
	offer, answer := readB2B(t, "sipp_uac_offer.sdp"), readB2B(t, "sipp_uas_answer.sdp")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				s.Offer(SideA, offer)
				s.Answer(SideB, answer)
				s.OnHold()
				s.Codec()
				s.Stats()
			}
		})
	}
	wg.Wait()
}

func TestSessionClose(t *testing.T) {
	s, fb := newTestSession(t, relayAddr, defaultPrefs)
	if s.Done() != (<-chan struct{})(fb.done) {
		t.Error("Done is not the bridge's")
	}
	if st := s.Stats(); st.A.Packets != 1 || st.B.Packets != 2 {
		t.Errorf("Stats = %+v", st)
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if fb.closed != 1 {
		t.Errorf("bridge closed %d times", fb.closed)
	}
}

// FuzzSessionOfferAnswer feeds a session what the network might send, as an
// offer from either side and as the answer to a good one: it must never
// panic, and whatever parley sends on must parse.
func FuzzSessionOfferAnswer(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "b2b", "*.sdp"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	good := readB2B(f, "baresip_offer.sdp")
	f.Fuzz(func(t *testing.T, body []byte, fromCaller bool) {
		from := SideB
		if fromCaller {
			from = SideA
		}
		check := func(out []byte) {
			var sd sdp.SessionDescription
			if err := sd.Unmarshal(out); err != nil {
				t.Fatalf("parley's SDP does not parse: %v\n%s", err, out)
			}
		}

		s, _ := newTestSession(t, relayAddr, defaultPrefs)
		if out, err := s.Offer(from, body); err == nil {
			check(out)
		}

		s, _ = newTestSession(t, relayAddr, defaultPrefs)
		if _, err := s.Offer(from.Other(), good); err != nil {
			t.Fatal(err)
		}
		if out, err := s.Answer(from, body); err == nil {
			check(out)
			if s.Codec() == "" {
				t.Fatal("answered without a codec")
			}
		}
	})
}

func TestSessionCurrentAndUnchanged(t *testing.T) {
	sess, _ := newTestSession(t, netip.MustParseAddr("127.0.0.1"), []string{"PCMU", "PCMA"})
	offer := []byte("v=0\r\no=alice 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
	answer := []byte("v=0\r\no=bob 9 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
	if sess.Current(SideA) != nil || sess.Unchanged(SideA, offer) {
		t.Fatal("nothing sent or seen yet")
	}
	toB, err := sess.Offer(SideA, offer)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Unchanged(SideA, offer) {
		t.Fatal("unchanged while an offer waits for its answer")
	}
	toA, err := sess.Answer(SideB, answer)
	if err != nil {
		t.Fatal(err)
	}
	if string(sess.Current(SideB)) != string(toB) || string(sess.Current(SideA)) != string(toA) {
		t.Fatal("Current is not what was sent")
	}
	if !sess.Unchanged(SideA, offer) || !sess.Unchanged(SideB, answer) {
		t.Fatal("a repeated SDP with the same o= version is not unchanged")
	}
	bumped := []byte(strings.Replace(string(offer), "o=alice 7 1", "o=alice 7 2", 1))
	if sess.Unchanged(SideA, bumped) || sess.Unchanged(SideA, []byte("garbage")) {
		t.Fatal("a new version or garbage counted as unchanged")
	}
}
