package room

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/media/audio"
)

// testMember is a member without sockets: what the room sends it is
// decoded into heard.
type testMember struct {
	*Member
	voice *audio.Tone
	penc  audio.Encoder // the phone's encoder
	pdec  audio.Decoder // the phone's decoder
	heard []int16
	seq   uint16
}

func newTestMember(t testing.TB, r *Room, user, codec string, pt uint8, hz float64) *testMember {
	m := &Member{room: r, user: user, done: make(chan struct{}), stopped: make(chan struct{}), answered: true}
	if err := m.setCodec(media.Negotiated{Codec: codec, PayloadType: pt, TelephoneEvent: -1}); err != nil {
		t.Fatal(err)
	}
	m.remote = netipLoop
	tm := &testMember{Member: m}
	tm.penc, _ = audio.NewEncoder(codec)
	tm.pdec, _ = audio.NewDecoder(codec)
	if hz > 0 {
		tm.voice = audio.NewTone(hz, m.rate, 8000)
	}
	m.sink = func(pkt []byte) {
		var p rtp.Packet
		if err := p.Unmarshal(pkt); err != nil {
			t.Errorf("%s: sent a bad packet: %v", user, err)
			return
		}
		if p.PayloadType != pt {
			t.Errorf("%s: sent payload type %d, want %d", user, p.PayloadType, pt)
		}
		tm.heard = tm.pdec.Decode(tm.heard, p.Payload)
	}
	return tm
}

// speak pushes one 20 ms packet of the member's voice, as its phone would.
func (tm *testMember) speak() {
	if tm.voice == nil {
		return
	}
	pcm := make([]int16, tm.rate/50)
	tm.voice.Fill(pcm)
	tm.seq++
	tm.push(tm.seq, tm.dec.Decode(nil, tm.penc.Encode(nil, pcm)))
}

func testRoom(t testing.TB, opts ...Option) *Room {
	pool, err := media.NewPortPool(32700, 32766)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New("800", pool, netipLoop.Addr(), []string{"PCMU", "PCMA", "G722"}, append(opts, WithLogger(slog.New(slog.DiscardHandler)))...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run mixes frames ticks with every member speaking, then drops the first
// 100 ms each heard (jitter buffer start, filters).
func run(r *Room, ms []*testMember, talker *Member, frames int) {
	members := make([]*Member, len(ms))
	for i, m := range ms {
		members[i] = m.Member
	}
	for range frames {
		for _, m := range ms {
			m.speak()
		}
		r.mix.mixFrame(members, rateOf(members), r.gated, talker, time.Now())
	}
	for _, m := range ms {
		if skip := m.rate / 10; len(m.heard) > skip {
			m.heard = m.heard[skip:]
		}
	}
}

// hears reports whether pcm carries hz clearly: its power at hz is well
// above a strong tone's share of what Goertzel sees at -30 dB.
func hears(pcm []int16, hz float64, rate int) bool {
	return audio.Goertzel(pcm, hz, rate) > 1e4
}

// In a conference each member hears every other member's tone and not
// its own, whatever codec each speaks.
func TestConferenceMix(t *testing.T) {
	r := testRoom(t)
	ms := []*testMember{
		newTestMember(t, r, "a", "PCMU", 0, 500),
		newTestMember(t, r, "b", "PCMA", 8, 800),
		newTestMember(t, r, "c", "G722", 9, 1100),
		newTestMember(t, r, "d", "PCMU", 0, 0), // listens only
	}
	run(r, ms, nil, 50)
	tones := map[string]float64{"a": 500, "b": 800, "c": 1100}
	for _, m := range ms {
		if len(m.heard) == 0 {
			t.Fatalf("%s heard nothing", m.user)
		}
		for user, hz := range tones {
			got := hears(m.heard, hz, m.rate)
			if want := user != m.user; got != want {
				t.Errorf("%s (%s) hears %s's %v Hz: %v, want %v (power %.0f)", m.user, m.codec, user, hz, got, want, audio.Goertzel(m.heard, hz, m.rate))
			}
		}
	}
}

// A member alone hears silence, and a muted member is heard by nobody.
func TestAloneAndMuted(t *testing.T) {
	r := testRoom(t)
	a := newTestMember(t, r, "a", "PCMU", 0, 500)
	run(r, []*testMember{a}, nil, 20)
	if e := audio.Energy(a.heard); e > 100 {
		t.Errorf("alone, a hears energy %.0f", e)
	}
	a.heard = nil
	b := newTestMember(t, r, "b", "PCMU", 0, 800)
	b.SetMuted(true)
	run(r, []*testMember{a, b}, nil, 30)
	if hears(a.heard, 800, 8000) {
		t.Error("a hears muted b")
	}
	if !hears(b.heard, 500, 8000) {
		t.Error("muted b does not hear a")
	}
	if !b.Talking() || !b.Muted() {
		t.Errorf("b: talking %v muted %v", b.Talking(), b.Muted())
	}
}

// In a gated room only the talker is heard, by everyone else; with no
// talker nobody is.
func TestGatedMix(t *testing.T) {
	r := testRoom(t, WithGate())
	ms := []*testMember{
		newTestMember(t, r, "a", "PCMU", 0, 500),
		newTestMember(t, r, "b", "G722", 9, 800),
		newTestMember(t, r, "c", "PCMA", 8, 1100),
	}
	run(r, ms, ms[1].Member, 50)
	for _, m := range ms {
		for user, hz := range map[string]float64{"a": 500, "b": 800, "c": 1100} {
			want := user == "b" && m.user != "b"
			if got := hears(m.heard, hz, m.rate); got != want {
				t.Errorf("%s hears %s: %v, want %v", m.user, user, got, want)
			}
		}
		m.heard = nil
	}
	run(r, ms, nil, 30)
	for _, m := range ms {
		if e := audio.Energy(m.heard); e > 100 {
			t.Errorf("no talker: %s hears energy %.0f", m.user, e)
		}
	}
}

// Cues are heard over the mix by the member they are played to.
func TestCue(t *testing.T) {
	r := testRoom(t)
	a := newTestMember(t, r, "a", "PCMU", 0, 0)
	members := []*Member{a.Member}
	a.cue.queue(Cue{{1400, 200 * time.Millisecond}})
	for range 10 {
		a.cueNow = a.cue.next(a.cueBuf(8000), 8000)
		r.mix.mixFrame(members, 8000, false, nil, time.Now())
	}
	if !hears(a.heard, 1400, 8000) {
		t.Error("a does not hear its cue")
	}
}

// sendSocket returns a socket to send from and the address of one that
// takes the packets (and drops them unread once its buffer is full).
func sendSocket(b *testing.B) (*net.UDPConn, netip.AddrPort) {
	from, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	to, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { from.Close(); to.Close() })
	return from, to.LocalAddr().(*net.UDPAddr).AddrPort()
}

// BenchmarkRoom mixes one 20 ms tick of a conference of N members who all
// talk, a third of them in G.722 (so the room mixes at 16 kHz), the rest
// in PCMU and PCMA. A tick must take well under 20 ms for the room's
// mixing to stay under one core: ns/op divided by 20e6 is the share of a
// core the room takes. The +send variants also send each member's
// packet on a real UDP socket over loopback, as a room does.
func BenchmarkRoom(b *testing.B) {
	for _, n := range []int{3, 10, 30, 64, 250, 1000} {
		for _, v := range []struct {
			mixCodecs, udp bool
		}{{false, false}, {true, false}, {true, true}} {
			mixCodecs := v.mixCodecs
			name := fmt.Sprintf("members=%d/g711", n)
			if mixCodecs {
				name = fmt.Sprintf("members=%d/g711+g722", n)
			}
			if v.udp {
				if n > 250 {
					continue
				}
				name += "+send"
			}
			b.Run(name, func(b *testing.B) {
				r := testRoom(b)
				ms := make([]*testMember, n)
				members := make([]*Member, n)
				for i := range ms {
					codec, pt := "PCMU", uint8(0)
					switch {
					case mixCodecs && i%3 == 0:
						codec, pt = "G722", 9
					case i%2 == 1:
						codec, pt = "PCMA", 8
					}
					ms[i] = newTestMember(b, r, fmt.Sprint(i), codec, pt, float64(300+50*i))
					ms[i].Member.sink = func([]byte) {}
					if v.udp {
						ms[i].Member.sink = nil
						ms[i].Member.rtp, ms[i].Member.remote = sendSocket(b)
					}
					members[i] = ms[i].Member
				}
				rate := rateOf(members)
				// Fill every jitter buffer, then keep each member speaking
				// one frame per tick.
				frames := make([][]int16, n)
				for i, m := range ms {
					frames[i] = make([]int16, m.rate/50)
					m.voice.Fill(frames[i])
					for range jitterStart {
						m.seq++
						m.push(m.seq, frames[i])
					}
				}
				now := time.Now()
				for b.Loop() {
					for i, m := range ms {
						m.seq++
						m.push(m.seq, frames[i])
					}
					r.mix.mixFrame(members, rate, false, nil, now)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20e6*100, "%core")
			})
		}
	}
}

// Joining queues the join cue for everyone, leaving the leave cue for
// those who stay; a quiet room (a page) plays neither. The ticker runs
// while the room has members and stops with the last.
func TestJoinLeaveCues(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		var opts []Option
		if quiet {
			opts = append(opts, WithQuiet())
		}
		r := testRoom(t, opts...)
		a := newTestMember(t, r, "a", "PCMU", 0, 0)
		b := newTestMember(t, r, "b", "PCMU", 0, 0)
		a.sink, b.sink = func([]byte) {}, func([]byte) {}
		cues := func(m *testMember) int {
			r.mu.Lock()
			defer r.mu.Unlock()
			return len(m.cue.segs)
		}
		if err := r.add(a.Member); err != nil {
			t.Fatal(err)
		}
		if err := r.add(b.Member); err != nil {
			t.Fatal(err)
		}
		if got := cues(b); (got > 0) == quiet {
			t.Errorf("quiet %v: b has %d cue segments after joining", quiet, got)
		}
		time.Sleep(300 * time.Millisecond) // the ticker plays the join cues out
		r.remove(b.Member)
		if got := cues(a); (got > 0) == quiet {
			t.Errorf("quiet %v: a has %d cue segments after b left", quiet, got)
		}
		r.remove(a.Member)
		r.mu.Lock()
		running := r.stop != nil
		r.mu.Unlock()
		if running {
			t.Error("the ticker still runs in an empty room")
		}
	}
}

// The member past MaxMembers is refused with 486 Busy Here.
func TestRoomFull(t *testing.T) {
	r := testRoom(t)
	var ms []*Member
	for i := range MaxMembers {
		m := newTestMember(t, r, fmt.Sprint(i), "PCMU", 0, 0)
		m.sink = func([]byte) {}
		if err := r.add(m.Member); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		ms = append(ms, m.Member)
	}
	defer func() {
		for _, m := range ms {
			r.remove(m)
		}
	}()
	err := r.add(newTestMember(t, r, "late", "PCMU", 0, 0).Member)
	var st interface{ SIPStatus() (int, string) }
	if !errors.As(err, &st) {
		t.Fatalf("the member past the bound: %v", err)
	}
	if code, _ := st.SIPStatus(); code != 486 {
		t.Errorf("status %d, want 486", code)
	}
}
