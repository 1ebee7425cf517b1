package media

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
)

// bridge is what a Session needs of the relay's Bridge: two ports, one facing
// each side, between which packets flow. Tests put a fake in its place.
type bridge interface {
	Port(s Side) int
	Family(s Side) Family
	SetPeer(s Side, rtp, rtcp netip.AddrPort, mux bool)
	SetHold(onHold bool)
	SetClockRate(s Side, hz int)
	Latched(s Side) (rtp, rtcp netip.AddrPort)
	SetLatched(s Side, rtp, rtcp netip.AddrPort)
	PhoneChanged(s Side, d time.Duration)
	SetSRTP(s Side, keys *SRTPKeys) error
	Stats() BridgeStats
	Done() <-chan struct{}
	OnIdle(f func())
	Close() error
}

// errNoOffer means Answer was called with no offer from the other side
// waiting for it, which is a mistake of the caller, not of the network.
var errNoOffer = errors.New("media: answer without an offer from the other side")

// leg is what parley sent to one side: the o= line's session id and version
// and the last SDP with its version left out, to see whether the next one
// differs (RFC 3264 §8).
type leg struct {
	id, version uint64
	// last is the SHA-256 of the last SDP with its version left out; a
	// hash, not the text, because every established call keeps it.
	last    [sha256.Size]byte
	hasLast bool
	// sent is the last SDP sent to the side, as sent (version included).
	sent []byte
	// seen is the o= line (session id and version) of the last SDP the
	// side sent, to recognise an unchanged one in a refresh.
	seen    origin
	hasSeen bool
	// peer is where the bridge was last told the side receives (setPeer).
	peer peer
	// addr is the local address the side's SDP announces when the
	// sessions have no fixed one (SetAddress): the one facing its phone.
	addr netip.Addr
}

// origin identifies an SDP version (RFC 3264 §8: unchanged SDP keeps it).
type origin struct {
	user        string
	id, version uint64
	addr        string
}

// originOf copies the o= line of sd. Its strings are cloned: they point
// into the whole SDP text, which a call would otherwise keep.
func originOf(sd *sdp.SessionDescription) origin {
	o := sd.Origin
	return origin{user: strings.Clone(o.Username), id: o.SessionID, version: o.SessionVersion, addr: strings.Clone(o.UnicastAddress)}
}

// Session is one relayed call's media: a bridge between the caller (SideA)
// and the callee (SideB), and the SDP each side is sent. Offer and Answer
// rewrite each offer and answer for the other side. It is safe for
// concurrent use.
type Session struct {
	br bridge
	// fixed is, per side, the address its SDP announces when the Sessions
	// have a fixed one for the family of the side's bridge sockets;
	// invalid when the side's is set (SetAddress).
	fixed [2]netip.Addr
	prefs []string
	log   *slog.Logger

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	legs    [2]leg
	pending *relayOffer // the offer waiting for its answer, if any
	// pendingMux is whether the bridge was told to multiplex RTCP to the
	// pending offer's offerer.
	pendingMux bool
	// mux says both legs multiplex RTCP (RFC 5761) after the last exchange.
	mux   bool
	codec string
	hold  bool
	clock int // the answer's RTP clock rate, as the bridge was told
	// dtmfMode is each side's DTMF mode; events what each side negotiated
	// of telephone-event in the last exchange (dtmf_sdp.go).
	dtmfMode [2]DTMFMode
	events   [2]sideEvents
	// policy is each side's rtp.srtp or users[].srtp; sec what each leg
	// settled of SRTP (srtp_session.go).
	policy [2]SRTPPolicy
	sec    [2]legSRTP
}

// Offer takes an offer that arrived from side from (in an INVITE, re-INVITE,
// UPDATE, or the 200 of an INVITE without one) and returns parley's offer to
// the other side. The relayed audio stream keeps only the codecs parley
// is configured for, in the offerer's order and payload type numbers; every
// other stream is offered with port 0. Parley starts sending to the
// offerer's new address at once, since an offerer must be ready to receive
// there (RFC 3264 §8.3.1).
//
// A new offer replaces one still waiting for its answer. Errors carry a
// SIPStatus: 400 for malformed SDP (ErrBadSDP), 488 when no audio codec is
// left (ErrNoCommonCodec).
func (s *Session) Offer(from Side, body []byte) ([]byte, error) {
	if from != SideA && from != SideB {
		return nil, errors.New("media: offer from an unknown side")
	}
	sd, err := parseSDP(body)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	policy := s.policy[from]
	s.mu.Unlock()
	ro, err := readRelayOffer(from, sd, s.prefs, policy)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.srtpOffer(ro); err != nil {
		return nil, err
	}
	s.legs[from].seen, s.legs[from].hasSeen = originOf(sd), true
	to := from.Other()
	_, ro.events = splitEvents(ro.formats)
	ro.formats = s.eventsOffered(to, ro.formats)
	out, err := s.write(to, writeRelayOffer(ro, s.br.Port(to)), sdp.Timing{})
	if err != nil {
		return nil, err
	}
	s.pending = ro
	// RFC 5761 §5.1.1: RTCP goes to the RTP port only once an answer has
	// accepted rtcp-mux; a re-offer keeps what the last answer settled.
	s.pendingMux = ro.peer.mux && s.mux
	s.setPeer(from, ro.peer, s.pendingMux)
	s.log.Debug("media offer relayed", "from", from, "formats", ptList(ro.formats), "direction", ro.sent)
	return out, nil
}

// Answer takes the answer that arrived from side from to parley's last
// offer to it and returns parley's answer to the offerer. The answer may
// only choose among the codecs parley offered; others are dropped. Its
// direction passes on unchanged, since parley relays whatever flows.
//
// Errors carry a SIPStatus: 400 for malformed SDP, 488 when the answer
// refuses the audio stream or keeps no codec parley offered. After an error
// the offer still waits for an answer.
func (s *Session) Answer(from Side, body []byte) ([]byte, error) {
	sd, err := parseSDP(body)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ro := s.pending
	if ro == nil || ro.from != from.Other() {
		return nil, errNoOffer
	}
	ra, err := readRelayAnswer(ro, sd, s.prefs)
	if err != nil {
		return nil, err
	}
	legs, err := s.srtpAnswer(ro, ra, sd.MediaDescriptions[ro.audio])
	if err != nil {
		return nil, err
	}
	events := s.events
	ra.formats = s.eventsAnswered(ro, ra)
	out, err := s.write(ro.from, writeRelayAnswer(ro, ra, s.br.Port(ro.from)), ro.timing)
	if err != nil {
		s.events = events
		return nil, err
	}
	if err := s.commitSRTP(legs); err != nil {
		s.events = events
		return nil, err
	}
	s.tellEvents()
	s.pending = nil
	s.legs[from].seen, s.legs[from].hasSeen = originOf(sd), true

	s.mux = ro.peer.mux && ra.peer.mux
	if s.mux != s.pendingMux {
		s.setPeer(ro.from, ro.peer, s.mux)
	}
	s.setPeer(from, ra.peer, s.mux)
	// The bridge relays RTP as it is, so both sides use the answer's codec.
	s.br.SetClockRate(SideA, ra.clock)
	s.br.SetClockRate(SideB, ra.clock)
	s.clock = ra.clock
	s.codec = strings.Clone(ra.codec) // not a pointer into the answer's text
	if h := held(ro, ra); h != s.hold {
		s.hold = h
		s.br.SetHold(h)
		s.log.Debug("media hold changed", "on_hold", h, "by", ro.from)
	}
	return out, nil
}

// setPeer tells the bridge where side now receives; with mux its RTCP goes
// to the RTP address. An unspecified address (c=0.0.0.0 on hold) passes on
// too: the bridge then sends nowhere until the side sends itself.
func (s *Session) setPeer(side Side, p peer, mux bool) {
	if mux {
		p.rtcp = p.rtp
	}
	s.legs[side].peer = peer{rtp: p.rtp, rtcp: p.rtcp, mux: mux}
	s.br.SetPeer(side, p.rtp, p.rtcp, mux)
}

// announced returns the address the SDP to side to announces: the sessions'
// fixed one for the side's family, else the side's own (invalid before
// SetAddress). The caller holds s.mu.
func (s *Session) announced(to Side) netip.Addr {
	if s.fixed[to].IsValid() {
		return s.fixed[to]
	}
	return s.legs[to].addr
}

// SetAddress sets the local address the SDP parley sends to side announces
// on its o= and c= lines: the one facing that side's phone, for Sessions
// bound to every address (NewSessions given 0.0.0.0, or
// WithSessionsAddress6 given ::). An IPv6 addr is announced as IN IP6, and
// should face a side whose bridge sockets are IPv6 (Sessions.NewFor). With
// a fixed address for the side's family, that one is announced and
// SetAddress does nothing; an invalid or unspecified addr is ignored too.
//
// When the side was sent SDP already, parley's record of it (Current) is
// re-addressed as well, its version kept: that is what the side was sent
// when the copy it got came from Addressed (one branch of a forked call).
func (s *Session) SetAddress(side Side, addr netip.Addr) {
	addr = addr.Unmap()
	if side != SideA && side != SideB || !addr.IsValid() || addr.IsUnspecified() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.legs[side]
	if s.fixed[side].IsValid() || l.addr == addr {
		return
	}
	l.addr = addr
	if !l.hasLast {
		return
	}
	out, err := readdressed(l.sent, addr)
	if err != nil {
		s.log.Warn("media: SDP sent not re-addressed", "side", side, "error", err)
		return
	}
	last, err := sentHash(l.id, l.version, out)
	if err != nil {
		s.log.Warn("media: SDP sent not re-addressed", "side", side, "error", err)
		return
	}
	l.sent, l.last = out, last
}

// Addressed returns what Current(to) returns, announcing addr instead of
// the side's address: the offer for one branch of a forked call whose
// phone faces another local address than the one the offer was written
// for. It changes nothing; once that branch wins, SetAddress makes its
// address the side's. With a fixed address, or addr the side's already, it
// is Current(to).
func (s *Session) Addressed(to Side, addr netip.Addr) []byte {
	addr = addr.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.legs[to]
	if s.fixed[to].IsValid() || !addr.IsValid() || addr.IsUnspecified() || addr == l.addr || l.sent == nil {
		return l.sent
	}
	out, err := readdressed(l.sent, addr)
	if err != nil {
		s.log.Warn("media: SDP not re-addressed", "side", to, "error", err)
		return l.sent
	}
	return out
}

// readdressed returns sent, an SDP parley wrote, with addr on its o= and
// c= lines.
func readdressed(sent []byte, addr netip.Addr) ([]byte, error) {
	sd, err := parseSDP(sent)
	if err != nil {
		return nil, err
	}
	if sd.ConnectionInformation == nil || sd.ConnectionInformation.Address == nil {
		return nil, errors.New("no session-level c= line")
	}
	addrType := addressType(addr)
	sd.Origin.AddressType, sd.Origin.UnicastAddress = addrType, addr.String()
	sd.ConnectionInformation.AddressType = addrType
	sd.ConnectionInformation.Address.Address = addr.String()
	return sd.Marshal()
}

// addressType is SDP's name of addr's family (RFC 4566 §5.7).
func addressType(addr netip.Addr) string {
	if addr.Is6() {
		return "IP6"
	}
	return "IP4"
}

// write finishes the SDP parley sends to side to: its own o=, s=, c= and t=
// lines around media. The o= version goes up only when the SDP differs from
// what side was sent last (RFC 3264 §8).
func (s *Session) write(to Side, media []*sdp.MediaDescription, timing sdp.Timing) ([]byte, error) {
	addr := s.announced(to)
	if !addr.IsValid() {
		return nil, fmt.Errorf("media: writing SDP for the %v: no address to announce (SetAddress)", to)
	}
	addrType := addressType(addr)
	l := &s.legs[to]
	sd := &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username:       "parley",
			SessionID:      l.id,
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
		TimeDescriptions:  []sdp.TimeDescription{{Timing: timing}},
		MediaDescriptions: media,
	}
	key, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("media: writing SDP for the %v: %w", to, err)
	}
	version := l.version
	sum := sha256.Sum256(key)
	switch {
	case !l.hasLast:
		version = 1
	case sum != l.last:
		version++
	}
	// The key was written with version 0; the SDP sent differs only in
	// the o= line's version, so it is patched rather than written again.
	zero := fmt.Sprintf("o=parley %d 0 ", l.id)
	i := bytes.Index(key, []byte(zero))
	if i < 0 {
		return nil, fmt.Errorf("media: writing SDP for the %v: o= line not found", to)
	}
	out := make([]byte, 0, len(key)+20)
	out = append(out, key[:i]...)
	out = fmt.Appendf(out, "o=parley %d %d ", l.id, version)
	out = append(out, key[i+len(zero):]...)
	l.version, l.last, l.hasLast, l.sent = version, sum, true, out
	return out, nil
}

// phoneChangeGrace is how long the relay refuses the packets of a phone
// that gave its side to another (PhoneChanged): long enough for the last
// ones still on their way.
const phoneChangeGrace = time.Second

// PhoneChanged says another phone took side's place (a call transfer),
// before the new phone's offer or answer comes: the relay forgets where
// the side's media came from, and refuses for a second the old phone's
// last packets, which would otherwise latch the side and keep the new
// phone's media out.
func (s *Session) PhoneChanged(side Side) {
	if side != SideA && side != SideB {
		return
	}
	s.br.PhoneChanged(side, phoneChangeGrace)
	// The new phone gets keys of its own: the old one knows parley's, and
	// a context under them has counted past where a new phone starts.
	s.mu.Lock()
	if s.sec[side].on {
		s.sec[side].local = newKey(s.sec[side].local.tag, s.sec[side].local.suite)
	}
	s.mu.Unlock()
}

// Current returns the SDP parley last sent to side to (nil before any), the
// body of a session refresh: re-sent unchanged, with the same version, it
// changes nothing (RFC 3264 §8, RFC 4028 §10).
func (s *Session) Current(to Side) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.legs[to].sent
}

// Unchanged reports whether body, an SDP from side from, repeats the last
// one that side sent: same o= session id and version, so it only refreshes
// the session (RFC 3264 §8) and need not be relayed. Malformed SDP is never
// unchanged.
func (s *Session) Unchanged(from Side, body []byte) bool {
	sd, err := parseSDP(body)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.legs[from]
	return s.pending == nil && l.hasSeen && l.seen == originOf(sd)
}

// OnHold reports whether the last completed offer/answer put the media on
// hold: either side sends only or nothing, or the offer had c=0.0.0.0.
func (s *Session) OnHold() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hold
}

// Codec returns the audio codec the last answer chose, as parley spells it
// (PCMU, PCMA, G722, opus, ...), or "" before the first answer.
func (s *Session) Codec() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codec
}

// Stats returns the bridge's packet counts for both sides.
func (s *Session) Stats() BridgeStats { return s.br.Stats() }

// Done is closed when the bridge stops on its own, when no RTP arrived for
// longer than the relay's media timeout.
func (s *Session) Done() <-chan struct{} { return s.br.Done() }

// OnTimeout registers f to run when the media stopped for the relay's
// timeout (see Done), without a goroutine waiting meanwhile.
func (s *Session) OnTimeout(f func()) { s.br.OnIdle(f) }

// Close stops relaying and frees the bridge's ports. It may be called more
// than once; later calls return the first one's error.
func (s *Session) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.br.Close() })
	return s.closeErr
}
