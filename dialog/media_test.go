package dialog

import (
	"net/netip"
	"testing"
)

// addressingMedia is a MediaSession that records the addresses it is told
// to announce per leg (rtp.address "").
type addressingMedia struct {
	MediaSession
	set [2]netip.Addr // [0] the caller's, [1] the callee's
}

func (m *addressingMedia) SetAddress(toCaller bool, addr netip.Addr) {
	if toCaller {
		m.set[0] = addr
	} else {
		m.set[1] = addr
	}
}

func (m *addressingMedia) Addressed(toCaller bool, addr netip.Addr) []byte {
	return []byte(addr.String())
}

// TestFacingAddress checks the local address each leg's SDP announces:
// what Via and Contact announce towards the phone (the listener's address,
// or the route's source, sip.public_address above both).
func TestFacingAddress(t *testing.T) {
	s := newTestServer(t, "")
	if got := s.facing("udp", "127.0.0.5:5060"); got != netip.MustParseAddr("127.0.0.5") {
		t.Errorf("towards a phone on loopback: %v, want 127.0.0.5", got)
	}
	if got := s.facing("tcp", "127.0.0.1:40000"); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("towards a TCP phone on loopback: %v", got)
	}
	if got := s.facing("udp", "192.0.2.7:5060"); !got.IsValid() || got.IsUnspecified() {
		t.Errorf("towards a LAN phone: %v, want a local address", got)
	}
	if got := s.facing("tls", "127.0.0.1:5061"); got.IsValid() {
		t.Errorf("with no listener for the transport: %v, want none", got)
	}

	public := newTestServer(t, "sip:\n  public_address: 203.0.113.9\n")
	if got := public.facing("udp", "127.0.0.5:5060"); got != netip.MustParseAddr("203.0.113.9") {
		t.Errorf("with sip.public_address: %v, want 203.0.113.9", got)
	}

	m := &addressingMedia{}
	s.faceMedia(m, true, "udp", "127.0.0.5:5060")
	s.faceMedia(m, false, "tcp", "127.0.0.6:5070")
	s.faceMedia(m, false, "tls", "127.0.0.7:5061") // no listener: unchanged
	if m.set != [2]netip.Addr{netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("127.0.0.6")} {
		t.Errorf("addresses set %v", m.set)
	}
	s.faceMedia(nil, true, "udp", "127.0.0.5:5060") // no media: nothing to tell
}
