package room

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/media/audio"
)

// announced returns the address SDP announces: the room's own, or local
// when the room binds every address.
func (r *Room) announced(local netip.Addr) (netip.Addr, error) {
	if !r.addr.IsUnspecified() {
		return r.addr, nil
	}
	local = local.Unmap()
	if !local.IsValid() || local.IsUnspecified() {
		return netip.Addr{}, errors.New("room: bound to every address, needs the caller's local address")
	}
	return local, nil
}

// Join answers a phone's offer and makes it a member of the room. local
// is the address facing the phone, which the answer announces when the
// room binds every address. Errors carry the SIP status the call gets
// (400 bad SDP, 488 no codec the room mixes, 503 no free port, 486 room
// full).
func (r *Room) Join(offer []byte, local netip.Addr, user, call string) ([]byte, *Member, error) {
	announce, err := r.announced(local)
	if err != nil {
		return nil, nil, err
	}
	port, rtpConn, rtcpConn, err := media.BindPair(r.pool, r.addr)
	if err != nil {
		return nil, nil, err
	}
	m := r.newMember(user, call, port, rtpConn, rtcpConn)
	answer, neg, err := media.Answer(offer, r.prefs, announce, port, rand.Uint64()>>1)
	if err == nil {
		err = m.setCodec(neg)
	}
	if err != nil {
		m.free()
		return nil, nil, err
	}
	m.answered = true
	if err := r.add(m); err != nil {
		m.free()
		return nil, nil, err
	}
	m.start()
	return answer, m, nil
}

// free undoes a member that never joined.
func (m *Member) free() {
	m.rtp.Close()
	m.rtcp.Close()
	m.room.pool.Release(m.port)
}

// offerPTs are the payload types parley's own offers use.
var offerPTs = map[string]uint8{"PCMU": 0, "PCMA": 8, "G722": 9}

// eventPT is the payload type of telephone-event in parley's own offers.
const eventPT = 101

// OfferFor makes an SDP offer for a phone that parley calls into the room
// (a page), announcing local when the room binds every address, with the
// room's codecs and dir (media.SendOnly for a page: the member only
// listens). The member joins the mix once its Answer is given; until then
// it must be Closed if the call fails.
func (r *Room) OfferFor(local netip.Addr, user, call string, dir media.Direction) ([]byte, *Member, error) {
	announce, err := r.announced(local)
	if err != nil {
		return nil, nil, err
	}
	port, rtpConn, rtcpConn, err := media.BindPair(r.pool, r.addr)
	if err != nil {
		return nil, nil, err
	}
	m := r.newMember(user, call, port, rtpConn, rtcpConn)
	m.offerDir = dir
	ipv := "IP4"
	if announce.Is6() {
		ipv = "IP6"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=parley %d 1 IN %s %s\r\ns=parley\r\nc=IN %s %s\r\nt=0 0\r\n", rand.Uint64()>>1, ipv, announce, ipv, announce)
	var pts []string
	var maps []string
	for _, c := range r.prefs {
		pt, ok := offerPTs[c]
		if !ok {
			continue
		}
		pts = append(pts, strconv.Itoa(int(pt)))
		maps = append(maps, fmt.Sprintf("a=rtpmap:%d %s/8000\r\n", pt, c))
	}
	pts = append(pts, strconv.Itoa(eventPT))
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\n%sa=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\na=ptime:20\r\na=%s\r\n",
		port, strings.Join(pts, " "), strings.Join(maps, ""), eventPT, eventPT, dir)
	m.offered = true
	return []byte(b.String()), m, nil
}

// Answer takes the phone's answer to OfferFor's offer and adds the member
// to the mix. An answer that takes none of the offered codecs, or is not
// SDP, is an error; the member must then be Closed.
func (m *Member) Answer(answer []byte) error {
	if !m.offered || m.answered {
		return errors.New("room: Answer needs a member made by OfferFor, once")
	}
	neg, err := readAnswer(answer, m.offerDir)
	if err == nil {
		err = m.setCodec(neg)
	}
	if err != nil {
		return err
	}
	m.answered = true
	if err := m.room.add(m); err != nil {
		return err
	}
	m.start()
	return nil
}

// readAnswer reads the first audio stream of an answer to parley's offer.
func readAnswer(body []byte, offered media.Direction) (media.Negotiated, error) {
	var s sdp.SessionDescription
	if err := s.Unmarshal(body); err != nil {
		return media.Negotiated{}, fmt.Errorf("%w: %v", media.ErrBadSDP, err)
	}
	for _, md := range s.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		neg := media.Negotiated{TelephoneEvent: -1, ClockRate: 8000, Channels: 1, Direction: offered}
		found := false
		for _, f := range md.MediaName.Formats {
			n, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if n == eventPT {
				neg.TelephoneEvent = eventPT
				continue
			}
			for name, pt := range offerPTs {
				if int(pt) == n && !found {
					neg.PayloadType, neg.Codec, found = pt, name, true
				}
			}
		}
		if !found || !audio.Supported(neg.Codec) {
			return media.Negotiated{}, media.ErrNoCommonCodec
		}
		c := s.ConnectionInformation
		if md.ConnectionInformation != nil {
			c = md.ConnectionInformation
		}
		if c != nil && c.Address != nil {
			if a, err := netip.ParseAddr(c.Address.Address); err == nil {
				neg.Remote = netip.AddrPortFrom(a, uint16(md.MediaName.Port.Value))
			}
		}
		for _, a := range md.Attributes {
			switch a.Key {
			case "sendonly":
				neg.Direction = media.RecvOnly
			case "recvonly":
				neg.Direction = media.SendOnly
			case "inactive":
				neg.Direction = media.Inactive
			case "sendrecv":
				neg.Direction = media.SendRecv
			}
		}
		return neg, nil
	}
	return media.Negotiated{}, media.ErrNoCommonCodec
}
