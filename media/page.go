package media

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Pages is the media of paging groups (simplex): a page's pager talks and
// every member who answered hears it, nothing flows back. parley answers
// the pager with one codec and offers each member that codec alone,
// sendonly, so the pager's RTP goes to every member as it comes, without
// transcoding: a member whose phone cannot take the pager's codec refuses
// the offer and is left out. Each page is one PageSession.
type Pages struct {
	pool    *PortPool
	addr    netip.Addr
	prefs   []string
	timeout time.Duration
	log     *slog.Logger
}

// NewPages returns paging media taking ports from pool, bound on addr
// (0.0.0.0: every address, each SDP announcing the address it is given),
// answering pagers with the first of prefs they offer. A pager silent for
// timeout (0: never) ends its page.
func NewPages(pool *PortPool, addr netip.Addr, prefs []string, timeout time.Duration, log *slog.Logger) (*Pages, error) {
	if pool == nil {
		return nil, errors.New("media: paging needs a port pool")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pages{pool: pool, addr: addr.Unmap(), prefs: append([]string(nil), prefs...), timeout: timeout, log: log}, nil
}

// announce is the address an SDP facing local announces.
func (p *Pages) announce(local netip.Addr) (netip.Addr, error) {
	if !p.addr.IsUnspecified() {
		return p.addr, nil
	}
	local = local.Unmap()
	if !local.IsValid() || local.IsUnspecified() {
		return netip.Addr{}, errors.New("media: paging bound to every address needs the phone's local address")
	}
	return local, nil
}

// Start answers the pager's offer, receive only, and starts the page.
// Errors carry a SIP status as Answer's do.
func (p *Pages) Start(offer []byte, local netip.Addr) ([]byte, *PageSession, error) {
	announce, err := p.announce(local)
	if err != nil {
		return nil, nil, err
	}
	port, rtpConn, rtcpConn, err := BindPair(p.pool, p.addr)
	if err != nil {
		return nil, nil, err
	}
	answer, neg, err := Answer(offer, p.prefs, announce, port, rand.Uint64()>>1, WithReceiveOnly())
	if err != nil {
		rtpConn.Close()
		rtcpConn.Close()
		p.pool.Release(port)
		return nil, nil, err
	}
	_ = rtcpConn.SetReadBuffer(1) // RTCP is bound, not read
	rtpmap, fmtp := rtpmapOf(offer, neg.PayloadType)
	s := &PageSession{
		rtpmap: rtpmap, fmtp: fmtp,
		pages: p, port: port, rtp: rtpConn, rtcp: rtcpConn, neg: neg,
		members: map[*PageMember]struct{}{},
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		log:     p.log.With("rtp_port", port, "codec", neg.Codec),
	}
	go s.run()
	return answer, s, nil
}

// rtpmapOf returns the rtpmap and fmtp values offer gives payload type
// pt, the rtpmap being the static one of RFC 3551 when the offer has none.
func rtpmapOf(offer []byte, pt uint8) (rtpmap, fmtp string) {
	var sd sdp.SessionDescription
	if sd.Unmarshal(offer) == nil {
		for _, md := range sd.MediaDescriptions {
			for _, f := range offeredFormats(md) {
				if f.pt != pt {
					continue
				}
				if f.rtpmap != "" {
					return f.rtpmap, f.fmtp
				}
				if f.name != "" {
					return f.name + "/" + strconv.Itoa(f.clock), f.fmtp
				}
			}
		}
	}
	if f, ok := staticFormats[pt]; ok {
		return f.name + "/" + strconv.Itoa(f.clock), ""
	}
	return "", ""
}

// PageSession is one page: the pager's RTP port and the goroutine that
// sends what arrives there to every member.
type PageSession struct {
	pages *Pages
	port  int
	rtp   *net.UDPConn
	rtcp  *net.UDPConn
	neg   Negotiated
	// rtpmap and fmtp are the pager's codec as its offer wrote it, what
	// the members are offered.
	rtpmap, fmtp string
	log          *slog.Logger

	mu      sync.Mutex
	members map[*PageMember]struct{}

	packets   atomic.Uint64
	done      chan struct{} // closed when the pager's media stops
	stopped   chan struct{} // closed when run returns
	closeOnce sync.Once
}

// PageMember is one member of a page: its own port pair, from which the
// pager's RTP goes to it.
type PageMember struct {
	s    *PageSession
	port int
	rtp  *net.UDPConn
	rtcp *net.UDPConn
	// pt is the payload type the member's answer gave the codec, dst
	// where it receives; set by Answered.
	pt        atomic.Uint32
	dst       atomic.Pointer[netip.AddrPort]
	closeOnce sync.Once
}

// Negotiated returns the codec the pager was answered with.
func (s *PageSession) Negotiated() Negotiated { return s.neg }

// Packets counts the pager's RTP packets received.
func (s *PageSession) Packets() uint64 { return s.packets.Load() }

// Done is closed when the pager sent no RTP for the paging timeout.
func (s *PageSession) Done() <-chan struct{} { return s.done }

// Offer binds a port pair for a new member and returns parley's offer to
// it, facing local: the pager's codec alone, sendonly.
func (s *PageSession) Offer(local netip.Addr) ([]byte, *PageMember, error) {
	if s.rtpmap == "" {
		return nil, nil, fmt.Errorf("media: the pager's payload type %d has no rtpmap to offer", s.neg.PayloadType)
	}
	announce, err := s.pages.announce(local)
	if err != nil {
		return nil, nil, err
	}
	port, rtpConn, rtcpConn, err := BindPair(s.pages.pool, s.pages.addr)
	if err != nil {
		return nil, nil, err
	}
	_ = rtpConn.SetReadBuffer(1)
	_ = rtcpConn.SetReadBuffer(1)
	m := &PageMember{s: s, port: port, rtp: rtpConn, rtcp: rtcpConn}
	m.pt.Store(uint32(s.neg.PayloadType))
	addrType := "IP4"
	if announce.Is6() {
		addrType = "IP6"
	}
	id := rand.Uint64() >> 1
	pt := strconv.Itoa(int(s.neg.PayloadType))
	offer := fmt.Sprintf("v=0\r\no=parley %d 1 IN %s %s\r\ns=parley\r\nc=IN %s %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP %s\r\na=rtpmap:%s %s\r\n", id, addrType, announce, addrType, announce, port, pt, pt, s.rtpmap)
	if s.fmtp != "" {
		offer += "a=fmtp:" + pt + " " + s.fmtp + "\r\n"
	}
	if s.neg.Ptime > 0 {
		offer += "a=ptime:" + strconv.Itoa(s.neg.Ptime) + "\r\n"
	}
	offer += "a=sendonly\r\n"
	s.mu.Lock()
	s.members[m] = struct{}{}
	s.mu.Unlock()
	return []byte(offer), m, nil
}

// Answered takes the member's answer: where it receives, and the payload
// type it gave the codec. An answer that refuses the stream (port 0) or
// the codec leaves the member out, with an error saying why.
func (m *PageMember) Answered(answer []byte) error {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(answer); err != nil {
		return withDetail(ErrBadSDP, err.Error())
	}
	name, _, _ := strings.Cut(m.s.rtpmap, "/")
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		if md.MediaName.Port.Value == 0 {
			return withDetail(ErrNoCommonCodec, "the member refused the pager's "+name)
		}
		remote, err := remoteOf(&sd, md)
		if err != nil {
			return err
		}
		for _, f := range offeredFormats(md) {
			if f.pt == m.s.neg.PayloadType || strings.EqualFold(f.name, name) && f.clock == m.s.neg.ClockRate {
				m.pt.Store(uint32(f.pt))
				m.dst.Store(&remote)
				return nil
			}
		}
		return withDetail(ErrNoCommonCodec, "the member's answer has no "+name)
	}
	return withDetail(ErrNoCommonCodec, "the member's answer has no audio stream")
}

// Close leaves the page: the member's ports are freed.
func (m *PageMember) Close() error {
	m.closeOnce.Do(func() {
		m.s.mu.Lock()
		delete(m.s.members, m)
		m.s.mu.Unlock()
		m.rtp.Close()
		m.rtcp.Close()
		m.s.pages.pool.Release(m.port)
	})
	return nil
}

// Close ends the page: every member leaves, the pager's ports are freed
// and the page's goroutine has returned.
func (s *PageSession) Close() error {
	s.closeOnce.Do(func() {
		s.rtp.Close()
		s.rtcp.Close()
		<-s.stopped
		s.mu.Lock()
		ms := make([]*PageMember, 0, len(s.members))
		for m := range s.members {
			ms = append(ms, m)
		}
		s.mu.Unlock()
		for _, m := range ms {
			m.Close()
		}
		s.pages.pool.Release(s.port)
		s.log.Debug("page closed", "packets", s.packets.Load())
	})
	return nil
}

// run is the page's one goroutine: each RTP packet of the pager's codec
// goes to every member that answered, from the member's own port, with
// the payload type the member gave the codec.
func (s *PageSession) run() {
	defer close(s.stopped)
	timeout := s.pages.timeout
	last := time.Now()
	buf := make([]byte, maxDatagram)
	out := make([]byte, maxDatagram)
	var pkt rtp.Packet
	var targets []*PageMember
	for {
		if timeout > 0 {
			_ = s.rtp.SetReadDeadline(last.Add(timeout))
		}
		n, _, err := s.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.log.Info("page ended: no RTP from the pager", "timeout", timeout)
				close(s.done)
			}
			return
		}
		if n == len(buf) || !isRTP(&pkt, buf[:n]) || pkt.PayloadType != s.neg.PayloadType {
			continue // not the pager's audio (events, RTCP, junk)
		}
		last = time.Now()
		s.packets.Add(1)
		targets = targets[:0]
		s.mu.Lock()
		for m := range s.members {
			targets = append(targets, m)
		}
		s.mu.Unlock()
		for _, m := range targets {
			dst := m.dst.Load()
			if dst == nil {
				continue
			}
			copy(out, buf[:n])
			out[1] = out[1]&0x80 | byte(m.pt.Load())&0x7f
			_, _ = m.rtp.WriteToUDPAddrPort(out[:n], *dst)
		}
	}
}
