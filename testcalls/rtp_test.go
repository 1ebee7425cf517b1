package testcalls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// rtpPayloadSize is one 20 ms frame of G.711 at 8 kHz.
const rtpPayloadSize = 160

// rtpSocket is a phone's RTP socket on loopback.
type rtpSocket struct {
	t    *testing.T
	conn *net.UDPConn
}

// newRTPSocket binds a UDP socket on 127.0.0.1 and closes it when t ends.
func newRTPSocket(t *testing.T) *rtpSocket {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// 100 packets arrive in a burst when a test sends faster than 20 ms.
	_ = conn.SetReadBuffer(1 << 20)
	t.Cleanup(func() { conn.Close() })
	return &rtpSocket{t: t, conn: conn}
}

// Addr is where the socket is bound.
func (s *rtpSocket) Addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Port is the socket's UDP port.
func (s *rtpSocket) Port() int { return int(s.Addr().Port()) }

// streamPayload is packet i of stream tag: the tag, the index and a pattern,
// so that a payload from the wrong stream, a reordered one or a damaged one
// all show.
func streamPayload(tag byte, i int) []byte {
	p := make([]byte, rtpPayloadSize)
	p[0] = tag
	binary.BigEndian.PutUint32(p[1:5], uint32(i))
	for j := 5; j < len(p); j++ {
		p[j] = byte(j*7) ^ byte(i) ^ tag
	}
	return p
}

// rtpStream describes what one side sends.
type rtpStream struct {
	Tag         byte
	SSRC        uint32
	PayloadType uint8
	Count       int
	Interval    time.Duration
}

// send sends s to dst, one packet every s.Interval.
func (sock *rtpSocket) send(dst netip.AddrPort, s rtpStream) error {
	seq0 := uint16(rand.Uint32())
	ts0 := rand.Uint32()
	next := time.Now()
	for i := range s.Count {
		pkt := rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				Marker:         i == 0,
				PayloadType:    s.PayloadType,
				SequenceNumber: seq0 + uint16(i),
				Timestamp:      ts0 + uint32(i*rtpPayloadSize),
				SSRC:           s.SSRC,
			},
			Payload: streamPayload(s.Tag, i),
		}
		raw, err := pkt.Marshal()
		if err != nil {
			return err
		}
		if _, err := sock.conn.WriteToUDPAddrPort(raw, dst); err != nil {
			return fmt.Errorf("RTP packet %d to %v: %w", i, dst, err)
		}
		next = next.Add(s.Interval)
		time.Sleep(time.Until(next))
	}
	return nil
}

// rtpReceived is one packet a socket read.
type rtpReceived struct {
	Pkt  rtp.Packet
	From netip.AddrPort
}

// receive reads until it has n packets or no packet came for idle; it
// returns what it has then, with an error saying why it stopped short.
func (sock *rtpSocket) receive(n int, idle time.Duration) ([]rtpReceived, error) {
	var out []rtpReceived
	buf := make([]byte, 2048)
	for len(out) < n {
		_ = sock.conn.SetReadDeadline(time.Now().Add(idle))
		k, from, err := sock.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out, fmt.Errorf("got %d of %d RTP packets, then nothing for %v", len(out), n, idle)
			}
			return out, err
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(bytes.Clone(buf[:k])); err != nil {
			return out, fmt.Errorf("packet %d from %v is not RTP: %w", len(out), from, err)
		}
		out = append(out, rtpReceived{Pkt: pkt, From: from})
	}
	return out, nil
}

// drain reads whatever arrives within d and returns it.
func (sock *rtpSocket) drain(d time.Duration) []rtpReceived {
	got, _ := sock.receive(1<<20, d)
	return got
}

// checkStream asserts got is exactly stream s, in order, byte for byte, and
// (when from is valid) that every packet came from from.
func checkStream(t *testing.T, what string, got []rtpReceived, s rtpStream, from netip.AddrPort) {
	t.Helper()
	if len(got) != s.Count {
		t.Errorf("%s: received %d RTP packets, sent %d", what, len(got), s.Count)
	}
	bad := 0
	for i, r := range got {
		if bad >= 5 {
			t.Errorf("%s: more mismatches not shown", what)
			return
		}
		if i >= s.Count {
			break
		}
		want := streamPayload(s.Tag, i)
		switch {
		case !bytes.Equal(r.Pkt.Payload, want):
			idx := -1
			if len(r.Pkt.Payload) >= 5 {
				idx = int(binary.BigEndian.Uint32(r.Pkt.Payload[1:5]))
			}
			t.Errorf("%s: packet %d: payload differs (len %d, tag %#x, index %d); want stream %#x packet %d intact and in order",
				what, i, len(r.Pkt.Payload), firstByte(r.Pkt.Payload), idx, s.Tag, i)
			bad++
		case r.Pkt.PayloadType != s.PayloadType:
			t.Errorf("%s: packet %d: payload type %d, sent %d", what, i, r.Pkt.PayloadType, s.PayloadType)
			bad++
		case from.IsValid() && r.From != from:
			// RFC 4961: a relay sends from the port it receives on, which
			// is what the SDP it gave this phone names.
			t.Errorf("%s: packet %d came from %v; want %v, the address in this phone's SDP (symmetric RTP)", what, i, r.From, from)
			bad++
		}
	}
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// sdpAudio is the audio stream of an SDP body.
type sdpAudio struct {
	// Addr is the c= address and m= port.
	Addr netip.AddrPort
	// Formats are the m= line's payload types, in order.
	Formats []string
	// Rtpmap maps a payload type to its rtpmap value ("PCMA/8000").
	Rtpmap map[string]string
}

// parseAudio returns the first audio stream of body, failing t if there is none.
func parseAudio(t *testing.T, what string, body []byte) sdpAudio {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		t.Fatalf("%s: SDP does not parse: %v\n%s", what, err, body)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		ci := sd.ConnectionInformation
		if m.ConnectionInformation != nil {
			ci = m.ConnectionInformation
		}
		if ci == nil || ci.Address == nil {
			t.Fatalf("%s: audio stream without a c= line:\n%s", what, body)
		}
		ip, err := netip.ParseAddr(ci.Address.Address)
		if err != nil {
			t.Fatalf("%s: c= address %q is not an IP address:\n%s", what, ci.Address.Address, body)
		}
		a := sdpAudio{
			Addr:    netip.AddrPortFrom(ip, uint16(m.MediaName.Port.Value)),
			Formats: m.MediaName.Formats,
			Rtpmap:  map[string]string{},
		}
		for _, attr := range m.Attributes {
			if attr.Key == "rtpmap" {
				pt, v, _ := strings.Cut(attr.Value, " ")
				a.Rtpmap[pt] = v
			}
		}
		return a
	}
	t.Fatalf("%s: SDP has no audio stream:\n%s", what, body)
	return sdpAudio{}
}

// checkRelayed asserts a stream points to parley's relay: 127.0.0.1, an RTP
// port (even) in [min, max], and not the address of the phone at the other
// end of the call.
func checkRelayed(t *testing.T, what string, a sdpAudio, min, max int, other netip.AddrPort) {
	t.Helper()
	port := int(a.Addr.Port())
	if a.Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("%s: SDP sends RTP to %v, want parley's rtp.address 127.0.0.1", what, a.Addr)
	}
	if port < min || port > max {
		t.Errorf("%s: SDP port %d is outside parley's rtp range %d-%d (the relay did not anchor the media)", what, port, min, max)
	}
	if port%2 != 0 {
		t.Errorf("%s: SDP port %d is odd; RTP takes the even port (RFC 3550 §11)", what, port)
	}
	if a.Addr == other {
		t.Errorf("%s: SDP names the other phone's own RTP address %v: media would bypass parley", what, other)
	}
}

// rtpmapOf is the rtpmap of the static and test payload types.
var rtpmapOf = map[string]string{
	"0": "PCMU/8000", "8": "PCMA/8000", "9": "G722/8000",
	"96": "telephone-event/8000", "98": "telephone-event/8000", "101": "telephone-event/8000",
}

// mediaOffer is an SDP offer of payload types pts (see rtpmapOf) for RTP
// at host:port.
func mediaOffer(host string, port int, pts ...string) []byte {
	return sdpBody(host, port, pts, rtpmapOf)
}

// sdpBody writes a sendrecv audio SDP of pts, with the rtpmaps in maps.
func sdpBody(host string, port int, pts []string, maps map[string]string) []byte {
	id := rand.Uint32()
	var b strings.Builder
	af := "IP4"
	if strings.Contains(host, ":") {
		af = "IP6"
	}
	fmt.Fprintf(&b, "v=0\r\no=- %d %d IN %s %s\r\ns=parley-media-test\r\nc=IN %s %s\r\nt=0 0\r\n", id, id, af, host, af, host)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\n", port, strings.Join(pts, " "))
	for _, pt := range pts {
		if m, ok := maps[pt]; ok {
			fmt.Fprintf(&b, "a=rtpmap:%s %s\r\n", pt, m)
			if strings.HasPrefix(strings.ToLower(m), "telephone-event") {
				fmt.Fprintf(&b, "a=fmtp:%s 0-16\r\n", pt)
			}
		}
	}
	b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	return []byte(b.String())
}

// mediaAnswer answers offer with its first payload type (plus a
// telephone-event it offers), for RTP at host:port.
func mediaAnswer(offer []byte, host string, port int) []byte {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(offer); err != nil {
		return mediaOffer(host, port, "0")
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || len(m.MediaName.Formats) == 0 {
			continue
		}
		pts := []string{m.MediaName.Formats[0]}
		maps := map[string]string{}
		for _, attr := range m.Attributes {
			if attr.Key != "rtpmap" {
				continue
			}
			pt, v, _ := strings.Cut(attr.Value, " ")
			maps[pt] = v
			if strings.HasPrefix(strings.ToLower(v), "telephone-event/") && !slices.Contains(pts, pt) {
				pts = append(pts, pt)
			}
		}
		if _, ok := maps[pts[0]]; !ok {
			maps[pts[0]] = rtpmapOf[pts[0]]
		}
		return sdpBody(host, port, pts, maps)
	}
	return mediaOffer(host, port, "0")
}

// firstPT is the first payload type of a, as a number.
func firstPT(t *testing.T, a sdpAudio) uint8 {
	t.Helper()
	if len(a.Formats) == 0 {
		t.Fatal("SDP audio stream has no formats")
	}
	n, err := strconv.Atoi(a.Formats[0])
	if err != nil || n < 0 || n > 127 {
		t.Fatalf("SDP payload type %q is not a number", a.Formats[0])
	}
	return uint8(n)
}

// rtpRange is a block of loopback ports for parley's relay. The blocks sit
// below Linux's ephemeral range (32768-60999) and below the ports SIPp tests
// take (30000+), so nothing else binds them while a test runs; each test has
// its own block so a port lingering from one test never meets the next.
type rtpRange struct{ Min, Max int }

// yaml is the rtp section of parley's config for the block, with codecs and
// timeout as given (empty keeps parley's default).
func (r rtpRange) yaml(codecs []string, timeout string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rtp:\n  address: 127.0.0.1\n  port_min: %d\n  port_max: %d\n", r.Min, r.Max)
	if len(codecs) > 0 {
		fmt.Fprintf(&b, "  codecs: [%s]\n", strings.Join(codecs, ", "))
	}
	if timeout != "" {
		fmt.Fprintf(&b, "  timeout: %s\n", timeout)
	}
	return b.String()
}

// mediaDebug logs what a media test saw when PARLEY_TEST_VERBOSE is set.
func mediaDebug(t *testing.T, format string, args ...any) {
	if os.Getenv("PARLEY_TEST_VERBOSE") != "" {
		t.Logf(format, args...)
	}
}
