package media

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Negotiated is what an offer/answer exchange settled for the audio stream.
type Negotiated struct {
	// PayloadType is the audio codec's payload type, the offerer's number.
	PayloadType uint8
	// Codec is the codec's name as parley spells it (PCMU, PCMA, G722,
	// opus, or a preference as configured).
	Codec string
	// ClockRate is the codec's RTP clock rate in Hz.
	ClockRate int
	// Channels is the channel count of the codec's rtpmap (1 if absent).
	Channels int
	// TelephoneEvent is the payload type of RFC 4733 events, or -1 if the
	// answer carries none.
	TelephoneEvent int
	// Ptime is the offer's packetisation time in milliseconds, or 0.
	Ptime int
	// Remote is where the offer says to send RTP (c= and m= lines). Its
	// address is invalid if c= names a host rather than an IP address.
	// Symmetric RTP sends to where packets really come from instead.
	Remote netip.AddrPort
	// Direction is the answer's direction: what parley does (RFC 3264 §6.1).
	Direction Direction
}

// AnswerOption changes how Answer writes its answer.
type AnswerOption func(*answerConfig)

type answerConfig struct {
	version  uint64
	recvOnly bool
}

// WithReceiveOnly answers as a party that only receives: recvonly to an
// offer that sends, inactive to one that does not (a page's pager).
func WithReceiveOnly() AnswerOption {
	return func(c *answerConfig) { c.recvOnly = true }
}

// WithSessionVersion sets the o= line's session version (default 1). A new
// answer in the same session, to a re-INVITE, needs a higher one
// (RFC 3264 §8).
func WithSessionVersion(v uint64) AnswerOption {
	return func(c *answerConfig) { c.version = v }
}

// rtpProtos are the m-line transports parley can answer. Secure profiles
// (SAVP, DTLS) are refused with port 0.
var rtpProtos = map[string]bool{"RTP/AVP": true, "RTP/AVPF": true}

// Answer answers an SDP offer as RFC 3264 §6 describes. It takes the first
// audio stream that uses plain RTP and has a codec in common, and chooses
// the first of prefs (codec names, telephone-event among them) the offer
// contains, answering with the offerer's payload type numbers, fmtp and
// ptime. telephone-event goes along whenever prefs and the offer both have
// it. Every other stream is refused with port 0 in its place. The answer
// announces addr and port, with an o= line of user "parley" and sessID.
//
// A malformed offer gives an error wrapping ErrBadSDP; an offer with no
// usable audio codec one wrapping ErrNoCommonCodec.
func Answer(offer []byte, prefs []string, addr netip.Addr, port int, sessID uint64, opts ...AnswerOption) ([]byte, Negotiated, error) {
	cfg := answerConfig{version: 1}
	for _, o := range opts {
		o(&cfg)
	}
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() {
		return nil, Negotiated{}, fmt.Errorf("media: answer address %v is not usable", addr)
	}
	if port <= 0 || port > 65535 {
		return nil, Negotiated{}, fmt.Errorf("media: answer port %d is out of range", port)
	}

	if len(bytes.TrimSpace(offer)) == 0 {
		return nil, Negotiated{}, withDetail(ErrBadSDP, "empty body")
	}
	var off sdp.SessionDescription
	if err := off.Unmarshal(offer); err != nil {
		return nil, Negotiated{}, withDetail(ErrBadSDP, err.Error())
	}

	chosen := -1
	var neg Negotiated
	var attrs []sdp.Attribute
	for i, md := range off.MediaDescriptions {
		if !usableAudio(md) {
			continue
		}
		n, a, ok := negotiate(md, prefs)
		if !ok {
			continue
		}
		remote, err := remoteOf(&off, md)
		if err != nil {
			return nil, Negotiated{}, err
		}
		n.Remote = remote
		n.Direction = offerDirection(&off, md).answerTo()
		if cfg.recvOnly {
			if n.Direction.Receives() {
				n.Direction = RecvOnly
			} else {
				n.Direction = Inactive
			}
		}
		a = append(a, sdp.NewPropertyAttribute(n.Direction.String()))
		chosen, neg, attrs = i, n, a
		break
	}
	if chosen < 0 {
		if len(off.MediaDescriptions) == 0 {
			return nil, Negotiated{}, withDetail(ErrNoCommonCodec, "offer has no media stream")
		}
		for _, md := range off.MediaDescriptions {
			if md.MediaName.Media == "audio" && md.MediaName.Port.Value != 0 && secureProto(md.MediaName.Protos) {
				// Answer is for parley's own services, which do not speak
				// SRTP; only the relay does (srtp_session.go).
				return nil, Negotiated{}, withDetail(ErrSRTPUnsupported, "this number answers plain RTP/AVP only")
			}
		}
		return nil, Negotiated{}, withDetail(ErrNoCommonCodec, "no audio stream offers one of "+strings.Join(prefs, ", "))
	}

	addrType := "IP4"
	if addr.Is6() {
		addrType = "IP6"
	}
	ans := &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username:       "parley",
			SessionID:      sessID,
			SessionVersion: cfg.version,
			NetworkType:    "IN",
			AddressType:    addrType,
			UnicastAddress: addr.String(),
		},
		SessionName: "parley",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN",
			AddressType: addrType,
			Address:     &sdp.Address{Address: addr.String()},
		},
		// RFC 3264 §6: the answer's t= line must equal the offer's.
		TimeDescriptions: []sdp.TimeDescription{{}},
	}
	if len(off.TimeDescriptions) > 0 {
		ans.TimeDescriptions[0].Timing = off.TimeDescriptions[0].Timing
	}
	for i, md := range off.MediaDescriptions {
		if i == chosen {
			formats := []string{strconv.Itoa(int(neg.PayloadType))}
			if neg.TelephoneEvent >= 0 {
				formats = append(formats, strconv.Itoa(neg.TelephoneEvent))
			}
			ans.MediaDescriptions = append(ans.MediaDescriptions, &sdp.MediaDescription{
				MediaName: sdp.MediaName{
					Media:   md.MediaName.Media,
					Port:    sdp.RangedPort{Value: port},
					Protos:  md.MediaName.Protos,
					Formats: formats,
				},
				Attributes: attrs,
			})
			continue
		}
		ans.MediaDescriptions = append(ans.MediaDescriptions, refused(md))
	}
	out, err := ans.Marshal()
	if err != nil {
		return nil, Negotiated{}, fmt.Errorf("media: writing answer: %w", err)
	}
	return out, neg, nil
}

// usableAudio reports whether md is an audio stream parley could take: not
// refused or disabled by the offerer (port 0) and over plain RTP.
func usableAudio(md *sdp.MediaDescription) bool {
	return md.MediaName.Media == "audio" &&
		md.MediaName.Port.Value != 0 &&
		rtpProtos[strings.ToUpper(strings.Join(md.MediaName.Protos, "/"))]
}

// usableRelayAudio is usableAudio for the relay, which also takes
// RTP/SAVP and RTP/SAVPF streams: it speaks SRTP per leg (srtp_session.go).
func usableRelayAudio(md *sdp.MediaDescription) bool {
	return md.MediaName.Media == "audio" && md.MediaName.Port.Value != 0 &&
		(rtpProtos[strings.ToUpper(strings.Join(md.MediaName.Protos, "/"))] || secureProto(md.MediaName.Protos))
}

// refused answers a stream parley does not take: same media and transport,
// port 0 and one of the offered formats, as RFC 3264 §6 requires.
func refused(md *sdp.MediaDescription) *sdp.MediaDescription {
	formats := md.MediaName.Formats
	if len(formats) > 1 {
		formats = formats[:1]
	}
	return &sdp.MediaDescription{MediaName: sdp.MediaName{
		Media:   md.MediaName.Media,
		Port:    sdp.RangedPort{Value: 0},
		Protos:  md.MediaName.Protos,
		Formats: formats,
	}}
}

// negotiate picks the codec and telephone-event of an audio stream and
// returns the answer's attributes for them.
func negotiate(md *sdp.MediaDescription, prefs []string) (Negotiated, []sdp.Attribute, bool) {
	formats := offeredFormats(md)
	var codec *format
	var codecName string
	for _, pref := range prefs {
		if strings.EqualFold(pref, TelephoneEvent) {
			continue
		}
		for i := range formats {
			if formats[i].matches(pref) {
				codec, codecName = &formats[i], canonicalName(pref)
				break
			}
		}
		if codec != nil {
			break
		}
	}
	if codec == nil {
		return Negotiated{}, nil, false
	}
	neg := Negotiated{
		PayloadType:    codec.pt,
		Codec:          codecName,
		ClockRate:      codec.clock,
		Channels:       codec.channels,
		TelephoneEvent: -1,
	}
	attrs := formatAttrs(*codec, codecName)

	// Offers such as Linphone's list telephone-event once per clock rate;
	// the one at the codec's rate is the one that fits (RFC 4733 §2.1).
	if hasPref(prefs, TelephoneEvent) {
		var te *format
		for i := range formats {
			if !formats[i].matches(TelephoneEvent) {
				continue
			}
			if te == nil || (te.clock != codec.clock && formats[i].clock == codec.clock) {
				te = &formats[i]
			}
		}
		if te != nil {
			neg.TelephoneEvent = int(te.pt)
			attrs = append(attrs, formatAttrs(*te, TelephoneEvent)...)
		}
	}
	if v, ok := md.Attribute("ptime"); ok {
		if ms, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && ms > 0 {
			neg.Ptime = ms
			attrs = append(attrs, sdp.NewAttribute("ptime", strconv.Itoa(ms)))
		}
	}
	return neg, attrs, true
}

// formatAttrs writes the rtpmap and fmtp of a chosen format. Static payload
// types get an rtpmap too, which RFC 4566 §6 allows and helps readers.
func formatAttrs(f format, name string) []sdp.Attribute {
	pt := strconv.Itoa(int(f.pt))
	rtpmap := f.rtpmap
	if rtpmap == "" {
		rtpmap = name + "/" + strconv.Itoa(f.clock)
		if f.channels > 1 {
			rtpmap += "/" + strconv.Itoa(f.channels)
		}
	}
	attrs := []sdp.Attribute{sdp.NewAttribute("rtpmap", pt+" "+rtpmap)}
	if f.fmtp != "" {
		attrs = append(attrs, sdp.NewAttribute("fmtp", pt+" "+f.fmtp))
	}
	return attrs
}

// offeredFormats lists an m-line's payload types in the offer's order with
// what its rtpmap and fmtp attributes say about them. Formats that are not
// payload type numbers, and dynamic ones without an rtpmap, are left out.
func offeredFormats(md *sdp.MediaDescription) []format {
	byPT := map[uint8]*format{}
	var out []format
	for _, f := range md.MediaName.Formats {
		pt, ok := parsePT(f)
		if !ok {
			continue
		}
		if _, dup := byPT[pt]; dup {
			continue
		}
		fm := staticFormats[pt]
		fm.pt = pt
		out = append(out, fm)
		byPT[pt] = nil
	}
	for i := range out {
		byPT[out[i].pt] = &out[i]
	}
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap":
			pt, name, clock, channels, ok := parseRtpmap(a.Value)
			if f := byPT[pt]; ok && f != nil {
				f.name, f.clock, f.channels = name, clock, channels
				_, f.rtpmap, _ = strings.Cut(strings.TrimSpace(a.Value), " ")
				f.rtpmap = strings.TrimSpace(f.rtpmap)
			}
		case "fmtp":
			ptStr, params, found := strings.Cut(strings.TrimSpace(a.Value), " ")
			pt, ok := parsePT(ptStr)
			if f := byPT[pt]; found && ok && f != nil {
				f.fmtp = strings.TrimSpace(params)
			}
		}
	}
	known := out[:0]
	for _, f := range out {
		if f.name != "" {
			known = append(known, f)
		}
	}
	return known
}

// remoteOf returns the RTP address an offer gives for md: its own c= line
// or the session's (RFC 4566 §5.7), and its m= port.
func remoteOf(s *sdp.SessionDescription, md *sdp.MediaDescription) (netip.AddrPort, error) {
	ci := md.ConnectionInformation
	if ci == nil {
		ci = s.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return netip.AddrPort{}, withDetail(ErrBadSDP, "audio stream has no c= line")
	}
	port := md.MediaName.Port.Value
	if port < 0 || port > 65535 {
		return netip.AddrPort{}, withDetail(ErrBadSDP, "audio port "+strconv.Itoa(port)+" is out of range")
	}
	// A multicast address may carry /ttl and /range suffixes.
	host, _, _ := strings.Cut(ci.Address.Address, "/")
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// c= may name a host (RFC 4566 §5.7); parley does not resolve it.
		return netip.AddrPortFrom(netip.Addr{}, uint16(port)), nil
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

// offerDirection returns md's direction attribute, else the session's, else
// sendrecv (RFC 3264 §5.1).
func offerDirection(s *sdp.SessionDescription, md *sdp.MediaDescription) Direction {
	for _, attrs := range [][]sdp.Attribute{md.Attributes, s.Attributes} {
		for _, a := range attrs {
			if d, ok := parseDirection(a.Key); ok {
				return d
			}
		}
	}
	return SendRecv
}

func hasPref(prefs []string, name string) bool {
	for _, p := range prefs {
		if strings.EqualFold(p, name) {
			return true
		}
	}
	return false
}
