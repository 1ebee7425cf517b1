package echo

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/dialog/service/servicetest"
)

func env(t *testing.T, yaml string) service.Env {
	t.Helper()
	return servicetest.Env(t, yaml, 24100, 24119)
}

const offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"

// TestSetupOff checks that an empty services.echo answers no number.
func TestSetupOff(t *testing.T) {
	b, err := setup(env(t, "services: {echo: \"\"}\n"))
	if err != nil || len(b) != 0 {
		t.Fatalf("got %v, %v; want nothing", b, err)
	}
}

// TestRegistered checks that the package registers itself under "echo".
func TestRegistered(t *testing.T) {
	if !strings.Contains(strings.Join(service.Names(), ","), "echo") {
		t.Fatalf("echo not registered: %v", service.Names())
	}
}

// TestEchoes sets the service up from config, answers a real offer, and
// sends an RTP packet to the answer's port: the same packet must come
// back. A bad offer gets an error carrying 400.
func TestEchoes(t *testing.T) {
	b, err := setup(env(t, "services: {echo: \"650\"}\n"))
	if err != nil || len(b) != 1 || b[0].Number != "650" {
		t.Fatalf("got %v, %v; want one binding for 650", b, err)
	}
	answer, sess, err := b[0].Service.Start([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var port int
	for _, line := range strings.Split(string(answer), "\r\n") {
		if rest, ok := strings.CutPrefix(line, "m=audio "); ok {
			port, _ = strconv.Atoi(strings.Fields(rest)[0])
		}
	}
	if port == 0 {
		t.Fatalf("no audio port in the answer:\n%s", answer)
	}
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 7, Timestamp: 160, SSRC: 42}, Payload: make([]byte, 160)}
	raw, _ := pkt.Marshal()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no echo: %v", err)
	}
	var back rtp.Packet
	if err := back.Unmarshal(buf[:n]); err != nil || back.SequenceNumber != 7 || len(back.Payload) != 160 {
		t.Fatalf("echoed %d bytes (%v), want the packet sent", n, err)
	}

	_, _, err = b[0].Service.Start([]byte("not sdp"))
	se, ok := err.(interface{ SIPStatus() (int, string) })
	if !ok {
		t.Fatalf("bad offer: %v has no SIP status", err)
	}
	if code, _ := se.SIPStatus(); code != 400 {
		t.Fatalf("bad offer: status %d, want 400", code)
	}
}
