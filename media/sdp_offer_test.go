package media

import (
	"net/netip"
	"testing"
)

func TestPeerOf(t *testing.T) {
	const head = "v=0\r\no=x 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
	tests := []struct {
		name string
		sdp  string
		want peer
		zero bool
	}{
		{
			name: "RTCP on the next port (RFC 3550 §11)",
			sdp:  head + "m=audio 4000 RTP/AVP 0\r\n",
			want: peer{rtp: netip.MustParseAddrPort("192.0.2.9:4000"), rtcp: netip.MustParseAddrPort("192.0.2.9:4001")},
		},
		{
			name: "a=rtcp with a port (RFC 3605)",
			sdp:  head + "m=audio 4000 RTP/AVP 0\r\na=rtcp:4005\r\n",
			want: peer{rtp: netip.MustParseAddrPort("192.0.2.9:4000"), rtcp: netip.MustParseAddrPort("192.0.2.9:4005")},
		},
		{
			name: "a=rtcp with an address",
			sdp:  head + "m=audio 4000 RTP/AVP 0\r\na=rtcp:4005 IN IP4 198.51.100.1\r\n",
			want: peer{rtp: netip.MustParseAddrPort("192.0.2.9:4000"), rtcp: netip.MustParseAddrPort("198.51.100.1:4005")},
		},
		{
			name: "a=rtcp that is not a port is ignored",
			sdp:  head + "m=audio 4000 RTP/AVP 0\r\na=rtcp:x\r\n",
			want: peer{rtp: netip.MustParseAddrPort("192.0.2.9:4000"), rtcp: netip.MustParseAddrPort("192.0.2.9:4001")},
		},
		{
			name: "rtcp-mux (RFC 5761)",
			sdp:  head + "m=audio 4000 RTP/AVPF 0\r\na=rtcp-mux\r\n",
			want: peer{rtp: netip.MustParseAddrPort("192.0.2.9:4000"), rtcp: netip.MustParseAddrPort("192.0.2.9:4001"), mux: true},
		},
		{
			name: "media-level c=0.0.0.0 holds",
			sdp:  head + "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n",
			want: peer{rtp: netip.MustParseAddrPort("0.0.0.0:4000"), rtcp: netip.MustParseAddrPort("0.0.0.0:4001")},
			zero: true,
		},
		{
			name: "a host name is left to latching",
			sdp:  head + "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 pbx.example.com\r\n",
			want: peer{rtp: netip.AddrPortFrom(netip.Addr{}, 4000), rtcp: netip.AddrPortFrom(netip.Addr{}, 4001)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sd, err := parseSDP([]byte(tc.sdp))
			if err != nil {
				t.Fatal(err)
			}
			got, zero, err := peerOf(sd, sd.MediaDescriptions[0])
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || zero != tc.zero {
				t.Errorf("got %+v zero=%t, want %+v zero=%t", got, zero, tc.want, tc.zero)
			}
		})
	}
}

// TestReadRelayOfferSkips checks that disabled audio streams are passed
// over for the first usable one with a codec in common: an RTP/SAVP one
// too, since the relay speaks SRTP per leg, unless rtp.srtp is off.
func TestReadRelayOfferSkips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy SRTPPolicy
		want   int
	}{
		{"srtp_then_rtp.sdp", SRTPOptional, 1},
		{"srtp_then_rtp.sdp", SRTPOff, 2},
		{"audio_video.sdp", SRTPOptional, 1},
	} {
		sd, err := parseSDP(readOffer(t, tc.name))
		if err != nil {
			t.Fatal(err)
		}
		ro, err := readRelayOffer(SideA, sd, defaultPrefs, tc.policy)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ro.audio != tc.want {
			t.Errorf("%s (srtp %v): relays stream %d, want %d", tc.name, tc.policy, ro.audio, tc.want)
		}
	}
}

func TestWithoutReceive(t *testing.T) {
	for d, want := range map[Direction]Direction{
		SendRecv: SendOnly, SendOnly: SendOnly, RecvOnly: Inactive, Inactive: Inactive,
	} {
		if got := d.withoutReceive(); got != want {
			t.Errorf("%v.withoutReceive() = %v, want %v", d, got, want)
		}
	}
}
