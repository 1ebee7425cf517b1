package media

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func newTestEcho(t *testing.T, size int, opts ...EchoOption) (*Echo, *PortPool) {
	t.Helper()
	pool, err := NewPortPool(23000, 23000+2*size-1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEcho(pool, loopback, defaultPrefs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e, pool
}

// answerPortOf reads the audio port out of an SDP answer.
func answerPortOf(t *testing.T, answer []byte) int {
	t.Helper()
	var s sdp.SessionDescription
	if err := s.Unmarshal(answer); err != nil {
		t.Fatalf("answer: %v\n%s", err, answer)
	}
	for _, md := range s.MediaDescriptions {
		if md.MediaName.Media == "audio" && md.MediaName.Port.Value != 0 {
			return md.MediaName.Port.Value
		}
	}
	t.Fatalf("no audio stream in answer:\n%s", answer)
	return 0
}

// dialRTP opens the caller's socket on loopback, aimed at the session.
func dialRTP(t *testing.T, port int) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(port))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testPacket(t *testing.T, seq int, pt uint8) []byte {
	t.Helper()
	payload := bytes.Repeat([]byte{byte(seq)}, 160)
	p := rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			PayloadType:    pt,
			SequenceNumber: uint16(1000 + seq),
			Timestamp:      uint32(160 * seq),
			SSRC:           0x11223344,
			Marker:         seq == 0,
		},
		Payload: payload,
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEchoReturnsEveryPacket(t *testing.T) {
	e, pool := newTestEcho(t, 4)
	answer, sess, err := e.Start(readOffer(t, "sipp_uac_pcap.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if got := answerPortOf(t, answer); got != sess.Port() {
		t.Fatalf("answer port %d, session port %d", got, sess.Port())
	}
	if neg := sess.Negotiated(); neg.Codec != "PCMA" || neg.PayloadType != 8 {
		t.Fatalf("negotiated %+v", neg)
	}
	if pool.InUse() != 1 {
		t.Fatalf("InUse() = %d, want 1", pool.InUse())
	}

	// The offer says 127.0.0.1:6000; the packets come from elsewhere and
	// must be answered there (symmetric RTP).
	c := dialRTP(t, sess.Port())
	for _, junk := range [][]byte{[]byte("not rtp"), {0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	const count = 50
	sent := make([][]byte, count)
	for i := range count {
		sent[i] = testPacket(t, i, 8)
		if _, err := c.Write(sent[i]); err != nil {
			t.Fatal(err)
		}
	}

	buf := make([]byte, 2048)
	var ssrc uint32
	for i := range count {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		var got, want rtp.Packet
		if err := got.Unmarshal(buf[:n]); err != nil {
			t.Fatalf("packet %d back is not RTP: %v", i, err)
		}
		_ = want.Unmarshal(sent[i])
		if got.SequenceNumber != want.SequenceNumber || got.Timestamp != want.Timestamp || got.PayloadType != want.PayloadType {
			t.Fatalf("packet %d back: seq %d ts %d pt %d, want seq %d ts %d pt %d", i,
				got.SequenceNumber, got.Timestamp, got.PayloadType, want.SequenceNumber, want.Timestamp, want.PayloadType)
		}
		if !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("packet %d payload differs", i)
		}
		if got.SSRC == want.SSRC {
			t.Fatalf("packet %d came back with the caller's own SSRC", i)
		}
		if i > 0 && got.SSRC != ssrc {
			t.Fatalf("SSRC changed mid-stream: %x then %x", ssrc, got.SSRC)
		}
		ssrc = got.SSRC
	}

	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	st := sess.Stats()
	want := EchoStats{Packets: count, Bytes: uint64(count * len(sent[0])), Dropped: 2}
	if st != want {
		t.Errorf("Stats() = %+v, want %+v", st, want)
	}
	if pool.InUse() != 0 {
		t.Errorf("InUse() = %d after Close, want 0", pool.InUse())
	}
	if err := sess.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-sess.Done():
		t.Error("Close closed Done; Done is for sessions that end on their own")
	default:
	}
}

func TestEchoTimeout(t *testing.T) {
	// Real sockets block in the network poller, which testing/synctest does
	// not count as durably blocked, so this test waits on the clock.
	const timeout = 150 * time.Millisecond
	e, pool := newTestEcho(t, 2, WithEchoTimeout(timeout))
	_, sess, err := e.Start(readOffer(t, "baresip.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	c := dialRTP(t, sess.Port())

	// Steady RTP keeps the session up well past the timeout, junk does not.
	for i := range 15 {
		if _, err := c.Write(testPacket(t, i, 0)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(timeout / 5)
	}
	select {
	case <-sess.Done():
		t.Fatalf("session ended while RTP flowed: %v", sess.Err())
	default:
	}
	if sess.Err() != nil {
		t.Fatalf("Err() = %v while running", sess.Err())
	}
	stopped := time.Now()
	for range 10 {
		_, _ = c.Write([]byte("keepalive junk"))
		time.Sleep(timeout / 10)
	}
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not time out")
	}
	if since := time.Since(stopped); since < timeout {
		t.Errorf("timed out after %v, before the %v timeout", since, timeout)
	}
	if !errors.Is(sess.Err(), ErrMediaTimeout) {
		t.Errorf("Err() = %v, want ErrMediaTimeout", sess.Err())
	}
	sess.Close()
	if pool.InUse() != 0 {
		t.Errorf("InUse() = %d after Close", pool.InUse())
	}
}

func TestEchoOnHold(t *testing.T) {
	// An inactive stream carries no RTP: silence is no timeout, and what
	// arrives anyway is not sent back.
	e, _ := newTestEcho(t, 2, WithEchoTimeout(50*time.Millisecond))
	_, sess, err := e.Start(readOffer(t, "ipv6_hold.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if sess.Negotiated().Direction != Inactive {
		t.Fatalf("direction %v, want inactive", sess.Negotiated().Direction)
	}
	c := dialRTP(t, sess.Port())
	if _, err := c.Write(testPacket(t, 0, 9)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 2048)); err == nil {
		t.Errorf("got %d bytes back on an inactive stream", n)
	}
	select {
	case <-sess.Done():
		t.Fatalf("inactive session timed out: %v", sess.Err())
	default:
	}
}

func TestEchoStartErrors(t *testing.T) {
	type statusErr interface{ SIPStatus() (int, string) }
	e, pool := newTestEcho(t, 1)

	_, _, err := e.Start(readOffer(t, "no_common.sdp"))
	if !errors.Is(err, ErrNoCommonCodec) {
		t.Fatalf("err = %v, want ErrNoCommonCodec", err)
	}
	if se, ok := err.(statusErr); !ok {
		t.Errorf("%T has no SIPStatus", err)
	} else if code, _ := se.SIPStatus(); code != 488 {
		t.Errorf("status %d, want 488", code)
	}
	if pool.InUse() != 0 {
		t.Fatalf("port kept after a failed Start: InUse() = %d", pool.InUse())
	}

	_, sess, err := e.Start(readOffer(t, "sipp_uac.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	_, _, err = e.Start(readOffer(t, "sipp_uac.sdp"))
	if !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("err = %v, want ErrPortsExhausted", err)
	}
	if se, ok := err.(statusErr); !ok {
		t.Errorf("%T has no SIPStatus", err)
	} else if code, _ := se.SIPStatus(); code != 503 {
		t.Errorf("status %d, want 503", code)
	}
}

func TestNewEchoOptions(t *testing.T) {
	pool, err := NewPortPool(23000, 23001)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		pool  *PortPool
		addr  netip.Addr
		prefs []string
		opts  []EchoOption
	}{
		{name: "nil pool", addr: loopback, prefs: defaultPrefs},
		{name: "no codecs", pool: pool, addr: loopback},
		{name: "negative timeout", pool: pool, addr: loopback, prefs: defaultPrefs, opts: []EchoOption{WithEchoTimeout(-time.Second)}},
		{name: "nil logger", pool: pool, addr: loopback, prefs: defaultPrefs, opts: []EchoOption{WithEchoLogger(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewEcho(tc.pool, tc.addr, tc.prefs, tc.opts...); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestEchoEveryAddress binds the echo on every address (rtp.address ""):
// each answer announces the local address the caller faces, and RTP sent
// to any local address comes back.
func TestEchoEveryAddress(t *testing.T) {
	pool, err := NewPortPool(23200, 23203)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEcho(pool, netip.IPv4Unspecified(), defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Start(readOffer(t, "sipp_uac.sdp")); err == nil || pool.InUse() != 0 {
		t.Fatalf("Start with no address to announce: %v, ports in use %d", err, pool.InUse())
	}
	facing := netip.MustParseAddr("127.0.0.2")
	answer, sess, err := e.StartAt(readOffer(t, "sipp_uac.sdp"), facing)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(answer); err != nil {
		t.Fatal(err)
	}
	if sd.Origin.UnicastAddress != "127.0.0.2" || sd.ConnectionInformation == nil || sd.ConnectionInformation.Address.Address != "127.0.0.2" {
		t.Fatalf("answer does not announce 127.0.0.2:\n%s", answer)
	}
	// Not a connected socket: the echo answers from the address the
	// kernel picks towards the caller, which is the one announced (both
	// come from the same route), not necessarily the one written to.
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, to := range []netip.Addr{facing, loopback} {
		if _, err := c.WriteToUDPAddrPort(testPacket(t, i, 0), netip.AddrPortFrom(to, uint16(sess.Port()))); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 2048)); err != nil {
			t.Errorf("RTP to %v: nothing back: %v", to, err)
		}
	}

	// An echo bound to one address announces it, whatever it is told.
	fixed, _ := newTestEcho(t, 1)
	answer, sess2, err := fixed.StartAt(readOffer(t, "sipp_uac.sdp"), facing)
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.Close()
	if !bytes.Contains(answer, []byte("c=IN IP4 127.0.0.1\r\n")) {
		t.Errorf("fixed echo's answer:\n%s", answer)
	}
}
