package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/pion/sdp/v3"
)

// This file saves what a relayed call's media needs to be rebuilt in another
// process, and rebuilds it: Restore on the ports the call had, after parley
// restarted, and Move on new ports, when another node takes the call over.

// ErrOfferPending means a session's state was asked for while an offer waits
// for its answer: checkpoints are taken between offer/answer exchanges only.
var ErrOfferPending = errors.New("media: an offer waits for its answer")

// SessionState is what a relayed call's media needs to be rebuilt in another
// process, as Session.State returns it. Its JSON form is what Checkpoint
// writes and Restore and Move read; its keys do not change.
type SessionState struct {
	// Ports are parley's RTP ports facing SideA (the caller) and SideB (the
	// callee); RTCP is on the port after each.
	Ports [2]int `json:"ports"`
	// Sides is what each leg was sent and said, indexed by Side.
	Sides [2]SideState `json:"sides"`
	// Codec is the audio codec the last answer chose ("" before one).
	Codec string `json:"codec,omitempty"`
	// Clock is that codec's RTP clock rate in Hz; 0 means 8000.
	Clock int `json:"clock,omitempty"`
	// Hold says the last exchange put the media on hold.
	Hold bool `json:"hold,omitempty"`
	// Mux says both legs multiplex RTCP on the RTP port (RFC 5761).
	Mux bool `json:"mux,omitempty"`
}

// SideState is what a SessionState holds of one side. Addresses are written
// as netip.AddrPort writes them, "" for none.
type SideState struct {
	// ID and Version are the o= session id and version of the SDP parley
	// last sent the side.
	ID      uint64 `json:"id"`
	Version uint64 `json:"version"`
	// Sent is the last SDP parley sent the side, as sent; "" before any.
	Sent string `json:"sent,omitempty"`
	// Seen is the o= line of the last SDP the side sent, if HasSeen, to
	// recognise a refresh that repeats it (RFC 3264 §8).
	Seen    OriginState `json:"seen"`
	HasSeen bool        `json:"has_seen"`
	// PeerRTP and PeerRTCP are where the side's SDP says it receives, and
	// PeerMux whether RTCP goes to the RTP address, as the bridge was told.
	PeerRTP  string `json:"peer_rtp,omitempty"`
	PeerRTCP string `json:"peer_rtcp,omitempty"`
	PeerMux  bool   `json:"peer_mux,omitempty"`
	// LatchedRTP and LatchedRTCP are the sources the bridge latched, where
	// the side really sends from (behind NAT, not what SDP says).
	LatchedRTP  string `json:"latched_rtp,omitempty"`
	LatchedRTCP string `json:"latched_rtcp,omitempty"`
	// Address is the local address the side's SDP announces, the one
	// facing its phone, when the relay binds every address (SetAddress);
	// "" with a fixed address. A checkpoint without it (written before
	// there was one) takes the c= line of Sent.
	Address string `json:"address,omitempty"`
	// Family is the family the side's bridge sockets are bound on, 4 or
	// 6; 0 (a checkpoint written before there were two) is the relay's
	// own.
	Family Family `json:"family,omitempty"`
	// DTMFMode is the side's DTMF mode ("" is auto), and Events says it
	// negotiated telephone-event, on payload type EventPT at EventClock
	// Hz: the bridge converts keys between a side with events and one
	// without (dtmf.go).
	DTMFMode   DTMFMode `json:"dtmf_mode,omitempty"`
	Events     bool     `json:"events,omitempty"`
	EventPT    uint8    `json:"event_pt,omitempty"`
	EventClock int      `json:"event_clock,omitempty"`
	// SRTP is the crypto suite the side spoke SRTP with, "" for plain RTP.
	// Keys and rollover counters are not saved, so Restore and Move refuse
	// such a checkpoint (ErrSRTPNotRestored).
	SRTP string `json:"srtp,omitempty"`
}

// ErrSRTPNotRestored means a checkpoint is of a call with an SRTP leg:
// its keys and rollover counters are not checkpointed, so the call cannot
// resume and is ended instead, with this reason.
var ErrSRTPNotRestored = errors.New("media: SRTP keys are not checkpointed")

// OriginState is an SDP o= line's username, session id, version and
// address.
type OriginState struct {
	User    string `json:"user"`
	ID      uint64 `json:"id"`
	Version uint64 `json:"version"`
	Addr    string `json:"addr"`
}

// State returns what the session's media needs to be rebuilt elsewhere: one
// consistent snapshot, taken under the session's lock and the bridge's. It
// fails with ErrOfferPending while an offer waits for its answer, since a
// pending offer is not saved.
func (s *Session) State() (SessionState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != nil {
		return SessionState{}, ErrOfferPending
	}
	st := SessionState{
		Ports: [2]int{s.br.Port(SideA), s.br.Port(SideB)},
		Codec: s.codec,
		Clock: s.clock,
		Hold:  s.hold,
		Mux:   s.mux,
	}
	// A call with an SRTP leg is not restored (ErrSRTPNotRestored), so
	// its checkpoint keeps no key: the store is no place for them.
	secure := s.sec[SideA].on || s.sec[SideB].on
	for side := range st.Sides {
		l := &s.legs[side]
		rtp, rtcp := s.br.Latched(Side(side))
		sent := string(l.sent)
		if secure {
			sent = redactCrypto(sent)
		}
		ss := SideState{
			ID:          l.id,
			Version:     l.version,
			Sent:        sent,
			HasSeen:     l.hasSeen,
			PeerRTP:     addrString(l.peer.rtp),
			PeerRTCP:    addrString(l.peer.rtcp),
			PeerMux:     l.peer.mux,
			LatchedRTP:  addrString(rtp),
			LatchedRTCP: addrString(rtcp),
			Family:      s.br.Family(Side(side)),
		}
		if l.addr.IsValid() {
			ss.Address = l.addr.String()
		}
		if m := s.dtmfMode[side]; m != DTMFAuto {
			ss.DTMFMode = m
		}
		if e := s.events[side]; e.pt >= 0 {
			ss.Events, ss.EventPT, ss.EventClock = true, uint8(e.pt), e.clock
		}
		if sec := s.sec[side]; sec.on {
			ss.SRTP = sec.remote.suite.name
		}
		if l.hasSeen {
			ss.Seen = OriginState{User: l.seen.user, ID: l.seen.id, Version: l.seen.version, Addr: l.seen.addr}
		}
		st.Sides[side] = ss
	}
	return st, nil
}

// Checkpoint returns State as JSON, what Sessions.Restore and Sessions.Move
// take.
func (s *Session) Checkpoint() ([]byte, error) {
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// Restore rebuilds a session from a Checkpoint on the same ports, for a call
// that survives a restart of parley: both phones keep sending where they
// did. It restores where each side receives and the sources the bridge had
// latched, so media flows to both phones before either sends, and the SDP
// each side was sent and sent, so Current and Unchanged answer as before.
//
// It fails with an error wrapping ErrPortNotInPool or ErrPortTaken when a
// port is not the relay's to give or is in use, and holds on to nothing
// then. The caller must Close the session.
func (s *Sessions) Restore(data []byte) (*Session, error) {
	c, err := readCheckpoint(data)
	if err != nil {
		return nil, err
	}
	var br bridge
	switch {
	case s.openAtFor != nil:
		br, err = s.openAtFor(c.st.Ports, c.families())
	case s.openAt != nil:
		br, err = s.openAt(c.st.Ports)
	default:
		return nil, errors.New("media: these sessions cannot open a bridge on given ports")
	}
	if err != nil {
		return nil, err
	}
	if br == nil {
		return nil, errors.New("media: relay opened no bridge")
	}
	if got := [2]int{br.Port(SideA), br.Port(SideB)}; got != c.st.Ports {
		br.Close()
		return nil, fmt.Errorf("media: restoring ports %v, the relay opened %v", c.st.Ports, got)
	}
	sess := s.rebuild(br, c)
	s.log.Info("media session restored", "port_a", c.st.Ports[SideA], "port_b", c.st.Ports[SideB], "codec", c.st.Codec)
	return sess, nil
}

// Move rebuilds a session from a Checkpoint on new ports, for a call another
// node takes over. The SDP each side is to be sent next, which Current then
// returns, is the one it was sent with this relay's address on c= and o=,
// the new port on the relayed stream's m= line and the o= version one up:
// the body of the re-INVITE that moves the phone (RFC 3264 §8). A relay
// bound to every address keeps each side's address of the checkpoint: call
// SetAddress with this node's before the re-INVITE goes. Where each
// side receives and the latched sources are kept, so the relay sends to both
// phones at once; after each phone's answer, pass it to Reoffered.
//
// Errors are those of Sessions.New (a relay out of ports gives 503) or say
// the checkpoint is unreadable. The caller must Close the session.
func (s *Sessions) Move(data []byte) (*Session, error) {
	c, err := readCheckpoint(data)
	if err != nil {
		return nil, err
	}
	var br bridge
	if s.openFor != nil {
		br, err = s.openFor(c.families())
	} else {
		br, err = s.open()
	}
	if err != nil {
		return nil, err
	}
	if br == nil {
		return nil, errors.New("media: relay opened no bridge")
	}
	sess := s.rebuild(br, c)
	sess.mu.Lock()
	for side := range sess.legs {
		if err = sess.moveLeg(Side(side)); err != nil {
			break
		}
	}
	sess.mu.Unlock()
	if err != nil {
		sess.Close()
		return nil, err
	}
	s.log.Info("media session moved",
		"from_port_a", c.st.Ports[SideA], "from_port_b", c.st.Ports[SideB],
		"port_a", br.Port(SideA), "port_b", br.Port(SideB), "codec", c.st.Codec)
	return sess, nil
}

// Reoffered takes the answer from side from to parley's own re-offer, the
// SDP Current returns for that side (after Move, or in a session refresh).
// It records the answer's o= line, so that Unchanged recognises it, and
// tells the bridge where the side now receives. As with SetPeer, a new
// address forgets the source latched for the side; the same address keeps
// it, so media does not wait for the phone to send. Nothing else changes:
// parley re-offered what the call had settled.
//
// Errors carry a SIPStatus: 400 for malformed SDP, 488 when the answer
// refuses the audio stream.
func (s *Session) Reoffered(from Side, answer []byte) error {
	if from != SideA && from != SideB {
		return errors.New("media: answer from an unknown side")
	}
	sd, err := parseSDP(answer)
	if err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.legs[from]
	if !l.hasLast {
		return fmt.Errorf("media: answer from the %v, which parley sent no offer", from)
	}
	offer, err := parseSDP(l.sent)
	if err != nil {
		return fmt.Errorf("media: reading parley's offer to the %v: %w", from, err)
	}
	// The relayed stream is the one parley offered a port on.
	audio := -1
	for i, md := range offer.MediaDescriptions {
		if md.MediaName.Port.Value != 0 {
			audio = i
			break
		}
	}
	if audio < 0 {
		return fmt.Errorf("media: parley's offer to the %v relays no stream", from)
	}
	if audio >= len(sd.MediaDescriptions) {
		return withDetail(ErrBadSDP, fmt.Sprintf("answer has %d m-lines, the offer %d",
			len(sd.MediaDescriptions), len(offer.MediaDescriptions)))
	}
	md := sd.MediaDescriptions[audio]
	if md.MediaName.Port.Value == 0 {
		return withDetail(ErrNoCommonCodec, "the "+from.String()+" refused the audio stream")
	}
	p, _, err := peerOf(sd, md)
	if err != nil {
		return err
	}
	_, offeredMux := offer.MediaDescriptions[audio].Attribute("rtcp-mux")
	mux := offeredMux && p.mux
	now := peer{rtp: p.rtp, rtcp: p.rtcp, mux: mux}
	if mux {
		now.rtcp = now.rtp
	}
	if err := s.srtpReoffered(from, md); err != nil {
		return err
	}
	if now != l.peer {
		s.setPeer(from, p, mux)
	}
	l.seen, l.hasSeen = originOf(sd), true
	return nil
}

// checkpoint is a SessionState read back and checked.
type checkpoint struct {
	st      SessionState
	legs    [2]leg
	latched [2][2]netip.AddrPort // per side: RTP's and RTCP's source
}

// families returns the family each side's sockets were bound on.
func (c *checkpoint) families() [2]Family {
	return [2]Family{c.st.Sides[SideA].Family, c.st.Sides[SideB].Family}
}

// readCheckpoint parses what Checkpoint wrote.
func readCheckpoint(data []byte) (*checkpoint, error) {
	c := &checkpoint{}
	if err := json.Unmarshal(data, &c.st); err != nil {
		return nil, fmt.Errorf("media: reading a session checkpoint: %w", err)
	}
	for side := range c.st.Sides {
		ss := &c.st.Sides[side]
		if ss.SRTP != "" {
			return nil, fmt.Errorf("%w: the %v spoke %s", ErrSRTPNotRestored, Side(side), ss.SRTP)
		}
		l := &c.legs[side]
		l.id, l.version = ss.ID, ss.Version
		if ss.HasSeen {
			o := ss.Seen
			l.seen, l.hasSeen = origin{user: o.User, id: o.ID, version: o.Version, addr: o.Addr}, true
		}
		if ss.Sent != "" {
			l.sent = []byte(ss.Sent)
			last, err := sentHash(l.id, l.version, l.sent)
			if err != nil {
				return nil, fmt.Errorf("media: reading a session checkpoint: the %v's SDP: %w", Side(side), err)
			}
			l.last, l.hasLast = last, true
		}
		addrs := []struct {
			text string
			to   *netip.AddrPort
		}{
			{ss.PeerRTP, &l.peer.rtp},
			{ss.PeerRTCP, &l.peer.rtcp},
			{ss.LatchedRTP, &c.latched[side][rtpSock]},
			{ss.LatchedRTCP, &c.latched[side][rtcpSock]},
		}
		for _, a := range addrs {
			if a.text == "" {
				continue
			}
			ap, err := netip.ParseAddrPort(a.text)
			if err != nil {
				return nil, fmt.Errorf("media: reading a session checkpoint: the %v's addresses: %w", Side(side), err)
			}
			*a.to = ap
		}
		l.peer.mux = ss.PeerMux
		addr, err := sideAddress(ss.Address, l.sent)
		if err != nil {
			return nil, fmt.Errorf("media: reading a session checkpoint: the %v's address: %w", Side(side), err)
		}
		l.addr = addr
	}
	return c, nil
}

// sideAddress reads a SideState's Address, or, when it has none, the
// session-level c= address of sent, the SDP the side was sent: invalid if
// neither says.
func sideAddress(text string, sent []byte) (netip.Addr, error) {
	if text != "" {
		return netip.ParseAddr(text)
	}
	if len(sent) == 0 {
		return netip.Addr{}, nil
	}
	sd, err := parseSDP(sent)
	if err != nil || sd.ConnectionInformation == nil || sd.ConnectionInformation.Address == nil {
		return netip.Addr{}, nil // readCheckpoint's hash of sent says what is wrong with it
	}
	a, err := netip.ParseAddr(sd.ConnectionInformation.Address.Address)
	if err != nil {
		return netip.Addr{}, nil
	}
	return a.Unmap(), nil
}

// rebuild makes a session of c on br and tells br what the checkpointed
// bridge knew.
func (s *Sessions) rebuild(br bridge, c *checkpoint) *Session {
	sess := s.session(br)
	sess.legs = c.legs
	for side := range sess.legs {
		if sess.fixed[side].IsValid() {
			// A fixed address is announced, whatever the checkpoint's
			// node announced.
			sess.legs[side].addr = netip.Addr{}
		}
	}
	sess.codec, sess.clock, sess.hold, sess.mux = c.st.Codec, c.st.Clock, c.st.Hold, c.st.Mux
	for side, ss := range c.st.Sides {
		sess.dtmfMode[side] = ParseDTMFMode(string(ss.DTMFMode))
		if ss.Events {
			sess.events[side] = sideEvents{pt: int(ss.EventPT), clock: ss.EventClock}
		}
	}
	sess.tellEvents()
	for side := range sess.legs {
		p := sess.legs[side].peer
		br.SetPeer(Side(side), p.rtp, p.rtcp, p.mux)
		br.SetLatched(Side(side), c.latched[side][rtpSock], c.latched[side][rtcpSock])
	}
	if c.st.Clock > 0 {
		br.SetClockRate(SideA, c.st.Clock)
		br.SetClockRate(SideB, c.st.Clock)
	}
	if c.st.Hold {
		br.SetHold(true)
	}
	return sess
}

// moveLeg rewrites what side to was sent last for this session's port and
// address, as Move describes. The caller holds s.mu.
func (s *Session) moveLeg(to Side) error {
	l := &s.legs[to]
	if !l.hasLast {
		return nil
	}
	sd, err := parseSDP(l.sent)
	if err != nil {
		return fmt.Errorf("media: moving the %v's SDP: %w", to, err)
	}
	// The relayed stream is the only one with a port; write puts this
	// relay's address on o= and c=.
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Port.Value != 0 {
			md.MediaName.Port.Value = s.br.Port(to)
		}
	}
	var timing sdp.Timing
	if len(sd.TimeDescriptions) > 0 {
		timing = sd.TimeDescriptions[0].Timing
	}
	// A new version even if the port number happens to be the same: the
	// phone must take the re-offer as a change (RFC 3264 §8).
	l.last = [sha256.Size]byte{}
	_, err = s.write(to, sd.MediaDescriptions, timing)
	return err
}

// sentHash returns the hash write kept of sent, an SDP it wrote with o=
// session id id and version version: that of the same SDP with version 0.
func sentHash(id, version uint64, sent []byte) ([sha256.Size]byte, error) {
	o := fmt.Sprintf("o=parley %d %d ", id, version)
	i := bytes.Index(sent, []byte(o))
	if i < 0 {
		return [sha256.Size]byte{}, fmt.Errorf("no line %q", o)
	}
	key := make([]byte, 0, len(sent))
	key = append(key, sent[:i]...)
	key = fmt.Appendf(key, "o=parley %d 0 ", id)
	key = append(key, sent[i+len(o):]...)
	return sha256.Sum256(key), nil
}

// addrString writes ap for a SessionState: "" when invalid.
func addrString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}
