package media

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

var update = flag.Bool("update", false, "rewrite golden answers under testdata/answers")

// defaultPrefs are the codecs of parley's default configuration.
var defaultPrefs = []string{"PCMU", "PCMA", "G722", "opus", "telephone-event"}

var answerAddr = netip.MustParseAddr("192.0.2.1")

const (
	answerPort   = 10000
	answerSessID = 4242
)

func readOffer(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAnswer(t *testing.T) {
	tests := []struct {
		name  string
		offer string
		prefs []string
		want  Negotiated
	}{
		{
			name:  "SIPp uac_pcap: PCMA and telephone-event",
			offer: "sipp_uac_pcap.sdp",
			want: Negotiated{PayloadType: 8, Codec: "PCMA", ClockRate: 8000, Channels: 1, TelephoneEvent: 101,
				Remote: netip.MustParseAddrPort("127.0.0.1:6000"), Direction: SendRecv},
		},
		{
			name:  "SIPp uac: static PCMU, LF line ends, no telephone-event",
			offer: "sipp_uac.sdp",
			want: Negotiated{PayloadType: 0, Codec: "PCMU", ClockRate: 8000, Channels: 1, TelephoneEvent: -1,
				Remote: netip.MustParseAddrPort("127.0.1.1:6000"), Direction: SendRecv},
		},
		{
			name:  "baresip: our preference PCMU wins over the offerer's opus",
			offer: "baresip.sdp",
			want: Negotiated{PayloadType: 0, Codec: "PCMU", ClockRate: 8000, Channels: 1, TelephoneEvent: 101, Ptime: 20,
				Remote: netip.MustParseAddrPort("192.168.1.10:10028"), Direction: SendRecv},
		},
		{
			name:  "baresip preferring opus keeps its fmtp",
			offer: "baresip.sdp",
			prefs: []string{"OPUS", "telephone-event"},
			want: Negotiated{PayloadType: 96, Codec: "opus", ClockRate: 48000, Channels: 2, TelephoneEvent: 101, Ptime: 20,
				Remote: netip.MustParseAddrPort("192.168.1.10:10028"), Direction: SendRecv},
		},
		{
			name:  "baresip preferring G722",
			offer: "baresip.sdp",
			prefs: []string{"g722", "PCMU"},
			want: Negotiated{PayloadType: 9, Codec: "G722", ClockRate: 8000, Channels: 1, TelephoneEvent: -1, Ptime: 20,
				Remote: netip.MustParseAddrPort("192.168.1.10:10028"), Direction: SendRecv},
		},
		{
			name:  "Linphone: telephone-event at the codec's clock rate",
			offer: "linphone.sdp",
			want: Negotiated{PayloadType: 0, Codec: "PCMU", ClockRate: 8000, Channels: 1, TelephoneEvent: 100,
				Remote: netip.MustParseAddrPort("192.168.1.20:7078"), Direction: SendRecv},
		},
		{
			name:  "Linphone with opus: telephone-event/48000",
			offer: "linphone.sdp",
			prefs: []string{"opus", "PCMU", "telephone-event"},
			want: Negotiated{PayloadType: 96, Codec: "opus", ClockRate: 48000, Channels: 2, TelephoneEvent: 101,
				Remote: netip.MustParseAddrPort("192.168.1.20:7078"), Direction: SendRecv},
		},
		{
			name:  "video refused in place, media-level c= and sendonly",
			offer: "audio_video.sdp",
			want: Negotiated{PayloadType: 0, Codec: "PCMU", ClockRate: 8000, Channels: 1, TelephoneEvent: 101, Ptime: 30,
				Remote: netip.MustParseAddrPort("10.0.0.6:49170"), Direction: RecvOnly},
		},
		{
			name:  "IPv6, session-level inactive, static G722",
			offer: "ipv6_hold.sdp",
			want: Negotiated{PayloadType: 9, Codec: "G722", ClockRate: 8000, Channels: 1, TelephoneEvent: 101,
				Remote: netip.MustParseAddrPort("[2001:db8::2]:5004"), Direction: Inactive},
		},
		{
			name:  "recvonly offer gets sendonly, t= copied",
			offer: "recvonly.sdp",
			want: Negotiated{PayloadType: 0, Codec: "PCMU", ClockRate: 8000, Channels: 1, TelephoneEvent: -1,
				Remote: netip.MustParseAddrPort("198.51.100.7:4000"), Direction: SendOnly},
		},
		{
			name:  "disabled and SRTP audio skipped for the plain RTP one",
			offer: "srtp_then_rtp.sdp",
			want: Negotiated{PayloadType: 0, Codec: "PCMU", ClockRate: 8000, Channels: 1, TelephoneEvent: -1,
				Remote: netip.MustParseAddrPort("203.0.113.9:7002"), Direction: SendRecv},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefs := tc.prefs
			if prefs == nil {
				prefs = defaultPrefs
			}
			offer := readOffer(t, tc.offer)
			ans, neg, err := Answer(offer, prefs, answerAddr, answerPort, answerSessID)
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			if neg != tc.want {
				t.Errorf("Negotiated:\n got %+v\nwant %+v", neg, tc.want)
			}
			checkAnswerShape(t, offer, ans, neg)

			golden := filepath.Join("testdata", "answers", goldenName(tc.offer, tc.prefs))
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, ans, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(ans, want) {
				t.Errorf("answer differs from %s:\n got:\n%s\nwant:\n%s", golden, ans, want)
			}
		})
	}
}

func goldenName(offer string, prefs []string) string {
	base := strings.TrimSuffix(offer, ".sdp")
	if prefs != nil {
		base += "_" + strings.ToLower(strings.Join(prefs, "_"))
	}
	return base + ".sdp"
}

// checkAnswerShape checks what RFC 3264 §6 requires of any answer: it
// parses, has one m-line per offered one in the same order with the same
// media, and only the chosen stream has a port.
func checkAnswerShape(t *testing.T, offer, answer []byte, neg Negotiated) {
	t.Helper()
	var off, ans sdp.SessionDescription
	if err := off.Unmarshal(offer); err != nil {
		t.Fatal(err)
	}
	if err := ans.Unmarshal(answer); err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, answer)
	}
	if ans.Origin.Username != "parley" || ans.Origin.SessionID != answerSessID {
		t.Errorf("o= line %+v", ans.Origin)
	}
	if ans.ConnectionInformation == nil || ans.ConnectionInformation.Address.Address != answerAddr.String() {
		t.Errorf("c= line %+v", ans.ConnectionInformation)
	}
	if len(ans.MediaDescriptions) != len(off.MediaDescriptions) {
		t.Fatalf("%d m-lines, offer has %d", len(ans.MediaDescriptions), len(off.MediaDescriptions))
	}
	active := 0
	for i, md := range ans.MediaDescriptions {
		if md.MediaName.Media != off.MediaDescriptions[i].MediaName.Media {
			t.Errorf("m-line %d is %s, offer's is %s", i, md.MediaName.Media, off.MediaDescriptions[i].MediaName.Media)
		}
		if len(md.MediaName.Formats) == 0 {
			t.Errorf("m-line %d has no format", i)
		}
		if md.MediaName.Port.Value == 0 {
			continue
		}
		active++
		if md.MediaName.Port.Value != answerPort {
			t.Errorf("m-line %d port %d", i, md.MediaName.Port.Value)
		}
		if _, ok := md.Attribute(neg.Direction.String()); !ok {
			t.Errorf("m-line %d lacks a=%s", i, neg.Direction)
		}
	}
	if active != 1 {
		t.Errorf("%d streams accepted, want 1", active)
	}
}

func TestAnswerErrors(t *testing.T) {
	tests := []struct {
		name   string
		offer  string
		prefs  []string
		want   error
		status int
	}{
		{name: "nothing in common", offer: "no_common.sdp", want: ErrNoCommonCodec, status: 488},
		{name: "only telephone-event in common", offer: "sipp_uac_pcap.sdp", prefs: []string{"PCMU", "telephone-event"}, want: ErrNoCommonCodec, status: 488},
		{name: "no audio stream", offer: "only_video.sdp", want: ErrNoCommonCodec, status: 488},
		{name: "no c= line", offer: "no_connection.sdp", want: ErrBadSDP, status: 400},
		{name: "garbage", offer: "malformed_garbage.sdp", want: ErrBadSDP, status: 400},
		{name: "no v= line", offer: "malformed_no_version.sdp", want: ErrBadSDP, status: 400},
		{name: "port not a number", offer: "malformed_mline.sdp", want: ErrBadSDP, status: 400},
		{name: "session id not a number", offer: "malformed_origin.sdp", want: ErrBadSDP, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefs := tc.prefs
			if prefs == nil {
				prefs = defaultPrefs
			}
			ans, _, err := Answer(readOffer(t, tc.offer), prefs, answerAddr, answerPort, answerSessID)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v; answer:\n%s", err, tc.want, ans)
			}
			// dialog finds the status by type assertion, not errors.As.
			se, ok := err.(interface{ SIPStatus() (int, string) })
			if !ok {
				t.Fatalf("%T has no SIPStatus", err)
			}
			if code, _ := se.SIPStatus(); code != tc.status {
				t.Errorf("status %d, want %d", code, tc.status)
			}
		})
	}
}

func TestAnswerEmpty(t *testing.T) {
	if _, _, err := Answer(nil, defaultPrefs, answerAddr, answerPort, 1); !errors.Is(err, ErrBadSDP) {
		t.Fatalf("err = %v, want ErrBadSDP", err)
	}
}

func TestAnswerSessionVersion(t *testing.T) {
	ans, _, err := Answer(readOffer(t, "sipp_uac.sdp"), defaultPrefs, answerAddr, answerPort, 7, WithSessionVersion(3))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ans, []byte("o=parley 7 3 IN IP4 192.0.2.1\r\n")) {
		t.Errorf("o= line not as asked:\n%s", ans)
	}
}

func TestAnswerBadLocal(t *testing.T) {
	offer := readOffer(t, "sipp_uac.sdp")
	if _, _, err := Answer(offer, defaultPrefs, netip.Addr{}, answerPort, 1); err == nil {
		t.Error("invalid address accepted")
	}
	if _, _, err := Answer(offer, defaultPrefs, netip.IPv4Unspecified(), answerPort, 1); err == nil {
		t.Error("unspecified address accepted")
	}
	if _, _, err := Answer(offer, defaultPrefs, answerAddr, 0, 1); err == nil {
		t.Error("port 0 accepted")
	}
}

// FuzzAnswer feeds Answer what the network might send: it must never panic,
// and whatever it answers must parse again.
func FuzzAnswer(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.sdp"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(readOffer(f, filepath.Base(s)))
	}
	f.Fuzz(func(t *testing.T, offer []byte) {
		ans, neg, err := Answer(offer, defaultPrefs, answerAddr, answerPort, answerSessID)
		if err != nil {
			return
		}
		var s sdp.SessionDescription
		if err := s.Unmarshal(ans); err != nil {
			t.Fatalf("answer does not parse: %v\n%s", err, ans)
		}
		if neg.Codec == "" {
			t.Fatal("answered without a codec")
		}
	})
}
