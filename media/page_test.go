package media

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPage: the pager is answered recvonly with one codec; each member is
// offered that codec alone, sendonly; the pager's RTP reaches every member
// that answered, with the payload type its answer gave the codec, and
// events do not; a member that refuses the codec is left out; silence
// from the pager ends the page.
func TestPage(t *testing.T) {
	pool, err := NewPortPool(31900, 31919)
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	pages, err := NewPages(pool, lo, []string{"PCMU", "PCMA", "telephone-event"}, 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	pager := relayPeer(t)
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + itoa(addrOf(pager).Port()) + " RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
	answer, s, err := pages.Start([]byte(offer), lo)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(string(answer), "a=recvonly") || !strings.Contains(string(answer), "RTP/AVP 0") {
		t.Errorf("answer to the pager, want recvonly PCMU:\n%s", answer)
	}

	one, two := relayPeer(t), relayPeer(t)
	off1, m1, err := s.Offer(lo)
	if err != nil {
		t.Fatal(err)
	}
	if o := string(off1); !strings.Contains(o, "m=audio") || !strings.Contains(o, "RTP/AVP 0\r\n") || !strings.Contains(o, "a=rtpmap:0 PCMU/8000") || !strings.Contains(o, "a=sendonly") {
		t.Errorf("offer to a member, want PCMU alone, sendonly:\n%s", o)
	}
	// The first member numbers PCMU 0, as offered.
	if err := m1.Answered([]byte("v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + itoa(addrOf(one).Port()) + " RTP/AVP 0\r\na=recvonly\r\n")); err != nil {
		t.Fatal(err)
	}
	_, m2, err := s.Offer(lo)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Answered([]byte("v=0\r\no=- 3 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n")); err == nil {
		t.Error("a member refusing the stream was taken")
	}
	m2.Close()
	_, m3, err := s.Offer(lo)
	if err != nil {
		t.Fatal(err)
	}
	if err := m3.Answered([]byte("v=0\r\no=- 4 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + itoa(addrOf(two).Port()) + " RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\na=recvonly\r\n")); err != nil {
		t.Fatal(err)
	}

	to := netip.AddrPortFrom(lo, uint16(s.port))
	event := relayRTP(t, 9, 1, 160, []byte{1, 0, 0, 160})
	event[1] = 101
	sendTo(t, pager, to, event)
	voice := relayRTP(t, 9, 2, 320, []byte("the pager speaks"))
	sendTo(t, pager, to, voice)
	for _, c := range []*net.UDPConn{one, two} {
		got := readRTP(t, c)
		if string(got.Payload) != "the pager speaks" {
			t.Errorf("member got %q first, want the voice packet (events are not paged)", got.Payload)
		}
		want := uint8(0)
		if c == two {
			want = 96
		}
		if got.PayloadType != want {
			t.Errorf("member got payload type %d, want %d", got.PayloadType, want)
		}
	}
	select {
	case <-s.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the page did not end after the pager fell silent")
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }
