package media

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// This file rewrites the SDP of a relayed call (RFC 3264): an offer from one
// side becomes parley's offer to the other, and that side's answer becomes
// parley's answer to the offerer. Only the audio stream parley relays keeps a
// port; parley writes its own o=, c= and m= ports on both legs, so neither
// side ever learns the other's address.

// peer is where one side receives RTP and RTCP, as its SDP says.
type peer struct {
	rtp, rtcp netip.AddrPort
	mux       bool
}

// mline is an m= line of the offer as the offerer wrote it, kept so that the
// answer can put every stream back in its place (RFC 3264 §6).
type mline struct {
	media   string
	protos  []string
	formats []string
}

// relayOffer is what parley keeps of an offer between passing it on and
// passing its answer back.
type relayOffer struct {
	from    Side
	streams []mline
	// audio is the index of the relayed stream among streams.
	audio int
	// formats are the relayed stream's formats parley offered on, in the
	// offerer's order and with its payload type numbers.
	formats []format
	// events are the offerer's telephone-event formats, which parley's
	// answer gives back to it whatever the answerer said (dtmf_sdp.go).
	events   []format
	ptime    string
	maxptime string
	// dir is the offerer's direction; sent is the one parley offered on,
	// which differs only for an offer that holds with c=0.0.0.0.
	dir, sent Direction
	// zero says the offer holds the old way, with c=0.0.0.0 (RFC 3264 §8.4).
	zero   bool
	peer   peer
	timing sdp.Timing
	// savp says the relayed stream is RTP/SAVP(F); crypto is the
	// offerer's a=crypto parley takes (none when invalid), and anyCrypto
	// says the stream had a=crypto at all (srtp_session.go).
	savp      bool
	crypto    sdesKey
	anyCrypto bool
	// offered are the keys parley offered the other side, none for plain
	// RTP; offerSAVP says it offered them on RTP/SAVP.
	offered   []sdesKey
	offerSAVP bool
}

// relayAnswer is what parley takes from the answer to a relayOffer.
type relayAnswer struct {
	formats  []format
	ptime    string
	maxptime string
	dir      Direction
	peer     peer
	// codec and clock are the first audio codec the answer accepted.
	codec string
	clock int
	// crypto is parley's key in its answer to the offerer, none for plain
	// RTP (srtp_session.go).
	crypto sdesKey
}

// held reports whether the exchange of o and a leaves the media on hold:
// either side sends only or not at all, or the offer hides its address.
func held(o *relayOffer, a *relayAnswer) bool {
	return o.zero || o.dir != SendRecv || a.dir != SendRecv
}

// parseSDP parses a body an offer or answer carries. Failures wrap ErrBadSDP.
func parseSDP(body []byte) (*sdp.SessionDescription, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, withDetail(ErrBadSDP, "empty body")
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return nil, withDetail(ErrBadSDP, err.Error())
	}
	return &sd, nil
}

// readRelayOffer picks the stream parley relays from an offer from side
// from: the first plain-RTP audio stream with a codec of prefs. It keeps the
// formats prefs allow, telephone-event only if prefs name it. An offer with
// no such stream gives an error wrapping ErrNoCommonCodec.
func readRelayOffer(from Side, off *sdp.SessionDescription, prefs []string, policy SRTPPolicy) (*relayOffer, error) {
	ro := &relayOffer{from: from, audio: -1}
	savpOff := false // an RTP/SAVP stream skipped because rtp.srtp is off
	if len(off.TimeDescriptions) > 0 {
		ro.timing = off.TimeDescriptions[0].Timing
	}
	for i, md := range off.MediaDescriptions {
		ro.streams = append(ro.streams, mline{
			media:   md.MediaName.Media,
			protos:  md.MediaName.Protos,
			formats: md.MediaName.Formats,
		})
		if ro.audio >= 0 || !usableRelayAudio(md) {
			continue
		}
		if policy == SRTPOff && secureProto(md.MediaName.Protos) {
			savpOff = true
			continue
		}
		kept := allowedFormats(md, prefs)
		if !hasCodec(kept) {
			continue
		}
		p, zero, err := peerOf(off, md)
		if err != nil {
			return nil, err
		}
		keys, anyCrypto, err := readCryptos(md)
		if err != nil {
			return nil, err
		}
		ro.savp, ro.anyCrypto = secureProto(md.MediaName.Protos), anyCrypto
		if len(keys) > 0 {
			ro.crypto = keys[0]
		}
		ro.audio, ro.formats, ro.peer, ro.zero = i, kept, p, zero
		ro.ptime, _ = md.Attribute("ptime")
		ro.maxptime, _ = md.Attribute("maxptime")
		ro.dir = offerDirection(off, md)
		ro.sent = ro.dir
		if zero {
			// RFC 3264 §8.4: c=0.0.0.0 asks the answerer not to send, which
			// is what sendonly (or inactive) says to the other side.
			ro.sent = ro.dir.withoutReceive()
		}
	}
	if ro.audio < 0 {
		if savpOff {
			return nil, ErrSRTPOff
		}
		if len(off.MediaDescriptions) == 0 {
			return nil, withDetail(ErrNoCommonCodec, "offer has no media stream")
		}
		return nil, withDetail(ErrNoCommonCodec, "no audio stream offers one of "+strings.Join(prefs, ", "))
	}
	return ro, nil
}

// readRelayAnswer checks an answer to ro: the relayed stream must be
// accepted with at least one audio codec parley offered. Formats parley did
// not offer, or that the answer maps to another codec, are dropped.
func readRelayAnswer(ro *relayOffer, ans *sdp.SessionDescription, prefs []string) (*relayAnswer, error) {
	if ro.audio >= len(ans.MediaDescriptions) {
		return nil, withDetail(ErrBadSDP, "answer has "+strconv.Itoa(len(ans.MediaDescriptions))+
			" m-lines, the offer "+strconv.Itoa(len(ro.streams)))
	}
	md := ans.MediaDescriptions[ro.audio]
	if md.MediaName.Port.Value == 0 {
		return nil, withDetail(ErrNoCommonCodec, "the "+ro.from.Other().String()+" refused the audio stream")
	}
	offered := map[uint8]format{}
	for _, f := range ro.formats {
		offered[f.pt] = f
	}
	described := answerFormats(md)
	ra := &relayAnswer{dir: offerDirection(ans, md)}
	seen := map[uint8]bool{}
	for _, s := range md.MediaName.Formats {
		pt, ok := parsePT(s)
		if !ok || seen[pt] {
			continue
		}
		f, ok := offered[pt]
		if !ok {
			continue
		}
		seen[pt] = true
		// The answer's rtpmap and fmtp describe what the answerer receives,
		// which is what the offerer needs to know (RFC 3264 §6.1).
		f.rtpmap, f.fmtp = "", ""
		if d, ok := described[pt]; ok {
			if d.name != "" && (!strings.EqualFold(d.name, f.name) || d.clock != f.clock) {
				continue
			}
			f.rtpmap, f.fmtp = d.rtpmap, d.fmtp
		}
		ra.formats = append(ra.formats, f)
	}
	for _, f := range ra.formats {
		if f.matches(TelephoneEvent) {
			continue
		}
		ra.codec, ra.clock = f.name, f.clock
		for _, pref := range prefs {
			if f.matches(pref) {
				ra.codec = canonicalName(pref)
				break
			}
		}
		break
	}
	if ra.codec == "" {
		return nil, withDetail(ErrNoCommonCodec, "the "+ro.from.Other().String()+" answered no audio codec parley offered")
	}
	p, _, err := peerOf(ans, md)
	if err != nil {
		return nil, err
	}
	ra.peer = p
	ra.ptime, _ = md.Attribute("ptime")
	ra.maxptime, _ = md.Attribute("maxptime")
	return ra, nil
}

// writeRelayOffer writes parley's offer to the other side for ro, listening
// on port. Streams parley does not relay are offered disabled, with port 0,
// so that the answer refuses them too (RFC 3264 §8.2).
func writeRelayOffer(ro *relayOffer, port int) []*sdp.MediaDescription {
	var out []*sdp.MediaDescription
	for i, s := range ro.streams {
		if i != ro.audio {
			out = append(out, disabled(s))
			continue
		}
		attrs := relayAttrs(ro.formats, ro.ptime, ro.maxptime)
		attrs = append(attrs, sdp.NewPropertyAttribute(ro.sent.String()))
		if ro.peer.mux {
			attrs = append(attrs, sdp.NewPropertyAttribute("rtcp-mux"))
		}
		for _, k := range ro.offered {
			attrs = append(attrs, k.attr())
		}
		out = append(out, &sdp.MediaDescription{
			MediaName:  sdp.MediaName{Media: s.media, Port: sdp.RangedPort{Value: port}, Protos: withSecure(s.protos, ro.offerSAVP), Formats: ptList(ro.formats)},
			Attributes: attrs,
		})
	}
	return out
}

// writeRelayAnswer writes parley's answer to the offerer of ro from the other
// side's answer ra, listening on port. Every stream the offerer offered gets
// its place; those not relayed are refused with port 0 and the offerer's
// formats (RFC 3264 §6). rtcp-mux is accepted when the answerer accepted it.
func writeRelayAnswer(ro *relayOffer, ra *relayAnswer, port int) []*sdp.MediaDescription {
	var out []*sdp.MediaDescription
	for i, s := range ro.streams {
		if i != ro.audio {
			out = append(out, disabled(s))
			continue
		}
		attrs := relayAttrs(ra.formats, ra.ptime, ra.maxptime)
		attrs = append(attrs, sdp.NewPropertyAttribute(ra.dir.String()))
		if ro.peer.mux && ra.peer.mux {
			attrs = append(attrs, sdp.NewPropertyAttribute("rtcp-mux"))
		}
		if ra.crypto.valid() {
			attrs = append(attrs, ra.crypto.attr())
		}
		out = append(out, &sdp.MediaDescription{
			MediaName:  sdp.MediaName{Media: s.media, Port: sdp.RangedPort{Value: port}, Protos: s.protos, Formats: ptList(ra.formats)},
			Attributes: attrs,
		})
	}
	return out
}

// disabled writes a stream parley does not relay: port 0 and the formats as
// offered, of which RFC 3264 §6 wants at least one.
func disabled(s mline) *sdp.MediaDescription {
	formats := s.formats
	if len(formats) == 0 {
		formats = []string{"0"}
	}
	return &sdp.MediaDescription{MediaName: sdp.MediaName{
		Media:   s.media,
		Port:    sdp.RangedPort{Value: 0},
		Protos:  s.protos,
		Formats: formats,
	}}
}

// relayAttrs writes the rtpmap and fmtp of formats, then ptime and maxptime.
func relayAttrs(formats []format, ptime, maxptime string) []sdp.Attribute {
	var attrs []sdp.Attribute
	for _, f := range formats {
		attrs = append(attrs, formatAttrs(f, f.name)...)
	}
	if ms, err := strconv.Atoi(strings.TrimSpace(ptime)); err == nil && ms > 0 {
		attrs = append(attrs, sdp.NewAttribute("ptime", strconv.Itoa(ms)))
	}
	if ms, err := strconv.Atoi(strings.TrimSpace(maxptime)); err == nil && ms > 0 {
		attrs = append(attrs, sdp.NewAttribute("maxptime", strconv.Itoa(ms)))
	}
	return attrs
}

func ptList(formats []format) []string {
	out := make([]string, len(formats))
	for i, f := range formats {
		out[i] = strconv.Itoa(int(f.pt))
	}
	return out
}

// allowedFormats returns the formats of md whose codec prefs names, in the
// offer's order.
func allowedFormats(md *sdp.MediaDescription, prefs []string) []format {
	var kept []format
	for _, f := range offeredFormats(md) {
		for _, pref := range prefs {
			if f.matches(pref) {
				kept = append(kept, f)
				break
			}
		}
	}
	return kept
}

// hasCodec reports whether formats hold an audio codec, not just
// telephone-event.
func hasCodec(formats []format) bool {
	for _, f := range formats {
		if !f.matches(TelephoneEvent) {
			return true
		}
	}
	return false
}

// answerFormats returns what an answer's rtpmap and fmtp lines say about
// each payload type. Unlike offeredFormats it keeps a payload type that has
// an fmtp but no rtpmap, with an empty name.
func answerFormats(md *sdp.MediaDescription) map[uint8]format {
	out := map[uint8]format{}
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap":
			pt, name, clock, channels, ok := parseRtpmap(a.Value)
			if !ok {
				continue
			}
			f := out[pt]
			f.pt, f.name, f.clock, f.channels = pt, name, clock, channels
			_, f.rtpmap, _ = strings.Cut(strings.TrimSpace(a.Value), " ")
			f.rtpmap = strings.TrimSpace(f.rtpmap)
			out[pt] = f
		case "fmtp":
			ptStr, params, found := strings.Cut(strings.TrimSpace(a.Value), " ")
			pt, ok := parsePT(ptStr)
			if !found || !ok {
				continue
			}
			f := out[pt]
			f.pt, f.fmtp = pt, strings.TrimSpace(params)
			out[pt] = f
		}
	}
	return out
}

// peerOf returns where the side that wrote s receives md's RTP and RTCP:
// c= and m= for RTP; a=rtcp (RFC 3605), else the next port, for RTCP.
// zero reports an unspecified address, the c=0.0.0.0 of an old-style hold.
func peerOf(s *sdp.SessionDescription, md *sdp.MediaDescription) (p peer, zero bool, err error) {
	rtp, err := remoteOf(s, md)
	if err != nil {
		return peer{}, false, err
	}
	p.rtp = rtp
	p.rtcp = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	if rtp.Port() == 65535 {
		p.rtcp = netip.AddrPortFrom(rtp.Addr(), 0)
	}
	if v, ok := md.Attribute("rtcp"); ok {
		fields := strings.Fields(v)
		if len(fields) > 0 {
			if port, err := strconv.ParseUint(fields[0], 10, 16); err == nil {
				p.rtcp = netip.AddrPortFrom(rtp.Addr(), uint16(port))
			}
		}
		if len(fields) == 4 {
			if ip, err := netip.ParseAddr(fields[3]); err == nil {
				p.rtcp = netip.AddrPortFrom(ip.Unmap(), p.rtcp.Port())
			}
		}
	}
	_, p.mux = md.Attribute("rtcp-mux")
	return p, rtp.Addr().IsValid() && rtp.Addr().IsUnspecified(), nil
}

// withoutReceive returns d with receiving taken away, the direction an offer
// with c=0.0.0.0 really means.
func (d Direction) withoutReceive() Direction {
	if d.Sends() {
		return SendOnly
	}
	return Inactive
}
