package media

import (
	"github.com/pion/sdp/v3"
)

// This file decides SDES-SRTP (RFC 4568) per leg of a relayed call. Each
// side speaks SRTP or plain RTP on its own, and the bridge decrypts what
// one side sends and encrypts what it sends the other:
//
//   - A side that offers SRTP (RTP/SAVP, or a=crypto on RTP/AVP) gets it,
//     unless rtp.srtp is off: then RTP/SAVP is refused with 488 and a
//     best-effort a=crypto is answered with plain RTP, and logged.
//   - Parley offers the other side SRTP when the offerer uses it, when that
//     side spoke SRTP already, or when rtp.srtp is mandatory. It offers it
//     best effort, a=crypto on RTP/AVP, so that a plain phone can still
//     answer; RTP/SAVP only when mandatory or that side chose RTP/SAVP.
//   - With rtp.srtp mandatory a side that offers or answers without SRTP
//     is refused with 488.
//
// The policy is per side: rtp.srtp, or the phone's user's users[].srtp
// (SetSRTPPolicy). It governs what parley accepts from and offers to that
// side; the other side may differ, since the relay bridges SRTP and RTP.

// legSRTP is what one leg settled of SRTP in the last exchange.
type legSRTP struct {
	on     bool
	savp   bool
	remote sdesKey // the side's key
	local  sdesKey // parley's key to the side
}

// srtpOffer checks the SRTP of offer ro against the policy and chooses
// what parley offers the other side. The caller holds s.mu.
func (s *Session) srtpOffer(ro *relayOffer) error {
	from, to := ro.from, ro.from.Other()
	switch {
	case ro.savp && !ro.crypto.valid():
		if !ro.anyCrypto {
			return withDetail(ErrNoCryptoSuite, "RTP/SAVP from the "+from.String()+" without a=crypto")
		}
		return withDetail(ErrNoCryptoSuite, "the "+from.String()+" offered none of AES_CM_128_HMAC_SHA1_80/32, AEAD_AES_128/256_GCM, AES_256_CM_HMAC_SHA1_80/32")
	case s.policy[from] == SRTPMandatory && !ro.crypto.valid():
		return withDetail(ErrSRTPRequired, "the "+from.String()+" offered plain RTP")
	}
	if ro.anyCrypto && s.policy[from] == SRTPOff {
		// RFC 4568 §6.2 lets the answerer of a=crypto on RTP/AVP decline;
		// the phone learns it from the answer without a=crypto.
		s.log.Info("SRTP offered on RTP/AVP and rtp.srtp is off: answering plain RTP", "side", from)
		ro.crypto = sdesKey{}
	} else if ro.anyCrypto && !ro.crypto.valid() {
		s.log.Info("SRTP offered with no crypto suite parley supports: answering plain RTP", "side", from)
	}
	if p := s.policy[to]; p == SRTPOff || !(p == SRTPMandatory || ro.crypto.valid() || s.sec[to].on) {
		return nil
	}
	ro.offerSAVP = s.policy[to] == SRTPMandatory || s.sec[to].savp
	if l := s.sec[to]; l.on {
		ro.offered = []sdesKey{l.local} // the same key again: no rekeying
		return nil
	}
	for i, suite := range cryptoSuites[:offeredSuites] {
		ro.offered = append(ro.offered, newKey(i+1, suite))
	}
	return nil
}

// srtpAnswer reads the SRTP of answer md to offer ro and settles both
// legs, without changing the session: legs is what commitSRTP then makes
// so. It sets ra.crypto, parley's key in its answer to the offerer. The
// caller holds s.mu.
func (s *Session) srtpAnswer(ro *relayOffer, ra *relayAnswer, md *sdp.MediaDescription) (legs [2]legSRTP, err error) {
	from, to := ro.from, ro.from.Other()
	legs = s.sec
	keys, _, err := readCryptos(md)
	if err != nil {
		return legs, err
	}
	ans := legSRTP{}
	for _, k := range keys {
		for _, o := range ro.offered {
			if k.tag == o.tag && k.suite.name == o.suite.name {
				ans = legSRTP{on: true, savp: ro.offerSAVP || secureProto(md.MediaName.Protos), remote: k, local: o}
				break
			}
		}
		if ans.on {
			break
		}
	}
	if !ans.on && len(ro.offered) > 0 && (s.policy[to] == SRTPMandatory || ro.offerSAVP) {
		return legs, withDetail(ErrSRTPRequired, "the "+to.String()+" answered without SRTP")
	}
	legs[to] = ans

	off := legSRTP{}
	if ro.crypto.valid() {
		local := s.sec[from].local
		if !s.sec[from].on || local.suite.name != ro.crypto.suite.name {
			local = newKey(ro.crypto.tag, ro.crypto.suite)
		}
		local.tag = ro.crypto.tag
		off = legSRTP{on: true, savp: ro.savp, remote: ro.crypto, local: local}
		ra.crypto = local
	}
	legs[from] = off
	return legs, nil
}

// srtpReoffered takes the SRTP of side from's answer md to parley's own
// re-offer (Reoffered): an SRTP leg's phone may answer with a new key
// under parley's tag (RFC 4568 §7.1.4), which the bridge then decrypts
// with; an answer without a=crypto leaves the leg as it was, since
// parley re-offered what the call had settled. The caller holds s.mu.
func (s *Session) srtpReoffered(from Side, md *sdp.MediaDescription) error {
	l := s.sec[from]
	if !l.on {
		return nil
	}
	keys, _, err := readCryptos(md)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.tag == l.local.tag && k.suite.name == l.local.suite.name {
			legs := s.sec
			legs[from].remote = k
			return s.commitSRTP(legs)
		}
	}
	return nil
}

// commitSRTP makes legs the session's and tells the bridge. The caller
// holds s.mu.
func (s *Session) commitSRTP(legs [2]legSRTP) error {
	for side, l := range legs {
		var keys *SRTPKeys
		if l.on {
			keys = &SRTPKeys{Remote: l.remote, Local: l.local}
		}
		if err := s.br.SetSRTP(Side(side), keys); err != nil {
			return err
		}
		if l.on != s.sec[side].on {
			s.log.Info("media leg encryption", "side", Side(side), "srtp", l.on, "suite", l.remote.suite.name)
		}
	}
	s.sec = legs
	return nil
}

// SRTP returns the crypto suite side speaks SRTP with after the last
// exchange, "" for plain RTP.
func (s *Session) SRTP(side Side) string {
	if side != SideA && side != SideB {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sec[side].on {
		return ""
	}
	return s.sec[side].remote.suite.name
}

// SetSRTPPolicy sets the SRTP policy of side's phone (users[].srtp),
// before the first offer; until then it is the sessions' (WithSRTP).
func (s *Session) SetSRTPPolicy(side Side, p SRTPPolicy) {
	if side != SideA && side != SideB {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy[side] = p
}

// WithSRTP sets the SDES-SRTP policy of every session (rtp.srtp); the
// default is SRTPOptional. Session.SetSRTPPolicy changes one side's.
func WithSRTP(p SRTPPolicy) SessionsOption {
	return func(s *Sessions) error {
		s.policy = p
		return nil
	}
}
