package dialog

import (
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Media anchors a call's RTP in parley: cmd/parley plugs in package media's
// relay. Without one, SDP passes between the legs unchanged.
type Media interface {
	// NewSession reserves relay ports for one call. Its error may carry a
	// SIP status (SIPStatus() (int, string)), e.g. 503 when out of ports.
	NewSession() (MediaSession, error)
}

// mediaOpener is a Media that opens each side of a session in the IP
// family of its phone, bridging an IPv4 phone and an IPv6 one.
type mediaOpener interface {
	NewSessionFor(caller, callee netip.Addr) (MediaSession, error)
}

// newMediaSession opens the media of a call between a caller at callerDest
// and a callee at calleeDest ("ip:port").
func (s *Server) newMediaSession(callerDest, calleeDest string) (MediaSession, error) {
	if mo, ok := s.media.(mediaOpener); ok {
		a, _ := netip.ParseAddrPort(callerDest)
		b, _ := netip.ParseAddrPort(calleeDest)
		return mo.NewSessionFor(a.Addr().Unmap(), b.Addr().Unmap())
	}
	return s.media.NewSession()
}

// MediaSession is one call's media: it rewrites each SDP that crosses
// between the legs so both phones send their RTP to parley.
type MediaSession interface {
	// Offer takes an offer arriving from the caller (fromCaller) or the
	// callee and returns the offer to send to the other leg.
	Offer(fromCaller bool, sdp []byte) ([]byte, error)
	// Answer takes an answer arriving from one leg and returns the answer
	// for the other.
	Answer(fromCaller bool, sdp []byte) ([]byte, error)
	// OnHold reports whether the last completed negotiation held the media.
	OnHold() bool
	// Current returns the SDP parley last sent to the caller (toCaller) or
	// the callee: the body of a session refresh.
	Current(toCaller bool) []byte
	// Unchanged reports whether an SDP from one leg repeats the last one
	// it sent (same o= version): a session refresh, not a change.
	Unchanged(fromCaller bool, sdp []byte) bool
	// Quality reports the codec and what the relay measured.
	Quality() MediaQuality
	// OnTimeout registers f to run once the media stopped for longer than
	// the timeout; no goroutine waits meanwhile.
	OnTimeout(f func())
	// Close frees the relay ports.
	Close() error
}

// mediaAddresser is a MediaSession whose SDP announces to each leg the
// local address facing that leg's phone: package media's relay bound to
// every address (rtp.address ""). With a fixed rtp.address it announces
// that one and ignores what it is told here.
type mediaAddresser interface {
	// SetAddress sets the address the SDP to the caller (toCaller) or the
	// callee announces. What that leg was sent already is re-addressed,
	// its version kept: it is what a forked branch got from Addressed.
	SetAddress(toCaller bool, addr netip.Addr)
	// Addressed returns Current(toCaller) announcing addr instead: the
	// offer for a forked branch whose phone faces another local address.
	Addressed(toCaller bool, addr netip.Addr) []byte
}

// phoneChanger is a MediaSession that can be told another phone took a
// leg's place (a transfer), so that the relay latches the new phone's
// media and not the old phone's last packets.
type phoneChanger interface {
	PhoneChanged(toCaller bool)
}

// facing returns the local address that faces a phone at dest ("ip:port")
// reached over transport: the one Via and Contact announce to it
// (sip.public_address when set; see transport.Advertiser). It is invalid
// when no listener serves transport.
func (s *Server) facing(transport, dest string) netip.Addr {
	ln := s.listenerFor(transport, dest)
	if ln == nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s.advertise.Host(ln, dest))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// faceMedia tells ms, when it announces an address per leg, the one facing
// the caller's (toCaller) or the callee's phone at dest. Call it before
// the first SDP goes to that leg.
func (s *Server) faceMedia(ms MediaSession, toCaller bool, transport, dest string) {
	ma, ok := ms.(mediaAddresser)
	if !ok {
		return
	}
	if a := s.facing(transport, dest); a.IsValid() {
		ma.SetAddress(toCaller, a)
	}
}

// MediaQuality is a call's media record.
type MediaQuality struct {
	Codec string `json:"codec,omitempty"`
	// Packets and Lost count RTP received from both phones together.
	Packets uint64 `json:"packets"`
	Lost    uint64 `json:"lost"`
	// Jitter is the larger of the two directions' interarrival jitter.
	Jitter time.Duration `json:"jitter_ns"`
	// CallerSRTP and CalleeSRTP are the crypto suites each leg speaks
	// SRTP with (rtp.srtp), empty for plain RTP; SRTPFailures counts the
	// packets of both that did not authenticate, dropped.
	CallerSRTP   string `json:"caller_srtp,omitempty"`
	CalleeSRTP   string `json:"callee_srtp,omitempty"`
	SRTPFailures uint64 `json:"srtp_auth_failures,omitempty"`
}

// WithMedia makes every call's RTP go through m.
func WithMedia(m Media) Option {
	return func(s *Server) error { s.media = m; return nil }
}

// isSDP reports whether m's body is a session description.
func isSDP(m sip.Message) bool {
	if len(m.Body()) == 0 {
		return false
	}
	if h := sipmsg.HeaderNamed(m, "Content-Type"); h != nil {
		ct, _, _ := strings.Cut(h.Value(), ";")
		return strings.EqualFold(strings.TrimSpace(ct), "application/sdp")
	}
	return true // no Content-Type: RFC 3261 §7.4.1 defaults to SDP in practice
}

// rewrite passes the SDP of src, an offer or an answer coming from the
// caller's or the callee's leg, through the call's media session ms.
// Bodies that are not SDP, and every body when there is no relay, pass
// unchanged.
func rewrite(ms MediaSession, offer, fromCaller bool, src sip.Message) ([]byte, error) {
	body := src.Body()
	if ms == nil || !isSDP(src) {
		return body, nil
	}
	var out []byte
	var err error
	if offer {
		out, err = ms.Offer(fromCaller, body)
	} else {
		out, err = ms.Answer(fromCaller, body)
	}
	if err != nil {
		return nil, sipmsg.As(err, 488, "Not Acceptable Here")
	}
	return out, nil
}

// withBody puts body on dst with src's body headers (Content-Type and
// friends); an empty body clears it.
func withBody(dst, src sip.Message, body []byte) {
	if len(body) == 0 {
		dst.SetBody(nil)
		return
	}
	sipmsg.CopyHeaders(dst, src, "Content-Type", "Content-Disposition", "Content-Encoding", "Content-Language")
	if sipmsg.HeaderNamed(dst, "Content-Type") == nil {
		dst.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	dst.SetBody(body)
}

// watchMedia hangs a call up when its media ms stops. An established
// call holds no goroutine for this: the relay calls back, and the hangup
// is an event of the call's like any other.
func (s *Server) watchMedia(c *Call, ms MediaSession) {
	if ms == nil {
		return
	}
	s.watchDTMF(c, ms)
	ms.OnTimeout(func() {
		select {
		case <-c.closed:
			return
		default:
		}
		c.log.Info("media timeout: no RTP")
		s.endCall(c, nil, resultAnswered, "media timeout")
	})
}
