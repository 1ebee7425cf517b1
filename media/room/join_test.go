package room

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/media/audio"
)

// phone is a UDP socket that sends PCMU tone packets to a member's port
// and decodes what comes back.
type phone struct {
	t    *testing.T
	conn *net.UDPConn
	to   netip.AddrPort
	tone *audio.Tone
	seq  uint16
}

func newPhone(t *testing.T, hz float64) *phone {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &phone{t: t, conn: c, tone: audio.NewTone(hz, 8000, 8000)}
}

func (p *phone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *phone) offer() []byte {
	return []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(p.port()) + " RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
}

func (p *phone) send(pt uint8, ts uint32, payload []byte) {
	p.seq++
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: p.seq, Timestamp: ts, SSRC: 7}, Payload: payload}
	b, _ := pkt.Marshal()
	_, _ = p.conn.WriteToUDPAddrPort(b, p.to)
}

func (p *phone) speak() {
	pcm := make([]int16, 160)
	p.tone.Fill(pcm)
	e, _ := audio.NewEncoder("PCMU")
	p.send(0, uint32(p.seq)*160, e.Encode(nil, pcm))
}

// heard drains what arrived and decodes it.
func (p *phone) heard() []int16 {
	var out []int16
	buf := make([]byte, 2048)
	var pkt rtp.Packet
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, err := p.conn.Read(buf)
		if err != nil {
			return out
		}
		if pkt.Unmarshal(buf[:n]) == nil && pkt.PayloadType == 0 {
			for _, b := range pkt.Payload {
				out = append(out, audio.UlawToLinear(b))
			}
		}
	}
}

// Two phones on real sockets, one joining with its offer and one parley
// offers to (as a page does), hear each other; a key reaches OnKey once.
func TestJoinAndOfferFor(t *testing.T) {
	keys := make(chan uint8, 8)
	r := testRoom(t, WithKeys(func(m *Member, code uint8) { keys <- code }))
	loop := netip.MustParseAddr("127.0.0.1")

	a := newPhone(t, 500)
	answer, ma, err := r.Join(a.offer(), loop, "a", "call-a")
	if err != nil {
		t.Fatal(err)
	}
	defer ma.Close()
	if !strings.Contains(string(answer), "PCMU/8000") || !strings.Contains(string(answer), "telephone-event") {
		t.Fatalf("answer:\n%s", answer)
	}
	a.to = ma.LocalAddr()

	b := newPhone(t, 900)
	offer, mb, err := r.OfferFor(loop, "b", "call-b", media.SendRecv)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if !strings.Contains(string(offer), "m=audio") {
		t.Fatalf("offer:\n%s", offer)
	}
	ans := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + strconv.Itoa(b.port()) + " RTP/AVP 0\r\n"
	if err := mb.Answer([]byte(ans)); err != nil {
		t.Fatal(err)
	}
	b.to = mb.LocalAddr()
	if got := len(r.Members()); got != 2 {
		t.Fatalf("%d members", got)
	}

	var ha, hb []int16
	for range 50 {
		a.speak()
		b.speak()
		time.Sleep(20 * time.Millisecond)
		ha = append(ha, a.heard()...)
		hb = append(hb, b.heard()...)
	}
	if !hears(ha, 900, 8000) || hears(ha, 500, 8000) {
		t.Errorf("a: 900 Hz %.0f, 500 Hz %.0f", audio.Goertzel(ha, 900, 8000), audio.Goertzel(ha, 500, 8000))
	}
	if !hears(hb, 500, 8000) || hears(hb, 900, 8000) {
		t.Errorf("b: 500 Hz %.0f, 900 Hz %.0f", audio.Goertzel(hb, 500, 8000), audio.Goertzel(hb, 900, 8000))
	}

	// One key: three packets of one event, the last three its end.
	for i := range 5 {
		end := byte(0)
		if i >= 2 {
			end = 0x80
		}
		a.send(101, 99999, []byte{10, end | 10, 0, byte(i * 40)})
	}
	select {
	case k := <-keys:
		if k != 10 {
			t.Errorf("key %d, want 10 (*)", k)
		}
	case <-time.After(time.Second):
		t.Fatal("no key")
	}
	select {
	case k := <-keys:
		t.Errorf("a second key %d from one event", k)
	case <-time.After(100 * time.Millisecond):
	}

	ma.Close()
	mb.Close()
	if len(r.Members()) != 0 {
		t.Error("members left behind")
	}
}
