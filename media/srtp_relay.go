package media

import (
	"errors"
	"fmt"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// This file is the relay's SRTP: per side of a bridge, one context that
// decrypts what the side sends (with the side's key) and one that encrypts
// what parley sends it (with parley's key). A side without them is plain
// RTP, and costs the forwarding path one nil check.

// maxSRTPStreams bounds the SSRCs each of one side's contexts keeps state
// for: the other side, plain RTP and unauthenticated, could otherwise grow
// the encrypting context with every SSRC it makes up, and the phone itself
// the decrypting one (which keeps state only for packets that
// authenticated, so only a phone with the key can).
const maxSRTPStreams = 8

// ssrcSet is a small bounded set of SSRCs.
type ssrcSet struct {
	v [maxSRTPStreams]uint32
	n int
}

func (s *ssrcSet) has(ssrc uint32) bool {
	for _, x := range s.v[:s.n] {
		if x == ssrc {
			return true
		}
	}
	return false
}

// admit reports whether ssrc is in the set or could be added; add adds it.
func (s *ssrcSet) admit(ssrc uint32) bool { return s.n < maxSRTPStreams || s.has(ssrc) }

func (s *ssrcSet) add(ssrc uint32) {
	if !s.has(ssrc) && s.n < maxSRTPStreams {
		s.v[s.n] = ssrc
		s.n++
	}
}

// errTooManyStreams means a packet of an SSRC beyond maxSRTPStreams.
var errTooManyStreams = errors.New("media: more SRTP streams than the bound")

// srtpSide is the SRTP of one side of a bridge. Guarded by the worker's
// mutex; pion's contexts are not safe for concurrent use.
type srtpSide struct {
	rx, tx *srtp.Context
	suite  string
	rxKey  sdesKey // the side's, to see whether a re-INVITE changed it
	txKey  sdesKey // parley's
	// tx, rx and rxRTCP are the SSRCs each context keeps state for.
	txSSRCs, rxSSRCs, rxRTCP ssrcSet
	hdr                      rtp.Header
	rtcpHdr                  rtcp.Header
	failures                 uint64 // packets that did not authenticate or decrypt
}

// newSRTPSide makes the contexts of one side: rx from the side's key,
// tx from parley's.
func newSRTPSide(rx, tx sdesKey) (*srtpSide, error) {
	// Replay protection is off in pion unless asked for; RFC 3711 §3.3.2
	// wants a window of at least 64.
	rxc, err := contextOf(rx, srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow))
	if err != nil {
		return nil, err
	}
	txc, err := contextOf(tx)
	if err != nil {
		return nil, err
	}
	return &srtpSide{rx: rxc, tx: txc, suite: rx.suite.name, rxKey: rx, txKey: tx}, nil
}

// replayWindow is the replay window of a decrypting context, in packets.
const replayWindow = 128

func contextOf(k sdesKey, opts ...srtp.ContextOption) (*srtp.Context, error) {
	n := k.suite.keyLen
	return srtp.CreateContext(k.key[:n:n], k.key[n:], k.suite.profile, opts...)
}

// SRTPKeys are the keys of one side of a bridge that speaks SRTP: Remote
// is the side's, which it encrypts with, and Local parley's, which the
// bridge encrypts what it sends the side with.
type SRTPKeys struct {
	Remote, Local sdesKey
}

// SetSRTP makes side s speak SRTP with keys, or plain RTP with nil. A key
// given again keeps its context, and with it the rollover counters and
// SRTCP indexes of its streams: a fresh context under parley's old key
// would count from zero again and encrypt with keystream it already used
// (RFC 3711 §9.1). A new key of the phone's gets a fresh context.
func (b *Bridge) SetSRTP(s Side, keys *SRTPKeys) error {
	var sec *srtpSide
	if keys != nil {
		b.w.mu.Lock()
		cur := b.sides[s].sec
		b.w.mu.Unlock()
		if cur != nil && cur.rxKey.equal(keys.Remote) && cur.txKey.equal(keys.Local) {
			return nil
		}
		var err error
		if sec, err = newSRTPSide(keys.Remote, keys.Local); err != nil {
			return err
		}
	}
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	if cur := b.sides[s].sec; sec != nil && cur != nil {
		if cur.txKey.equal(keys.Local) {
			sec.tx, sec.txSSRCs = cur.tx, cur.txSSRCs
		}
		sec.failures = cur.failures
	}
	b.sides[s].sec = sec
	return nil
}

// srtpFailed counts a packet from side in that did not authenticate; the
// first of each side is logged, at debug level, with why.
func (b *Bridge) srtpFailed(in Side, rtcp bool, pkt []byte, err error) {
	sec := b.sides[in].sec
	sec.failures++
	b.w.count.srtpFailures++
	b.drop(in)
	if sec.failures == 1 {
		b.r.log.Debug("SRTP packet dropped: it did not authenticate", "side", in, "rtcp", rtcp, "size", len(pkt),
			"head", fmt.Sprintf("% x", pkt[:min(len(pkt), 16)]), "error", err)
	}
}

// decryptRTP authenticates and decrypts pkt in place. It returns the
// plain packet, or an error for one that failed (forged, replayed, or
// encrypted with another key).
func (sec *srtpSide) decryptRTP(pkt []byte) ([]byte, error) {
	if len(pkt) < 12 {
		return nil, errors.New("media: SRTP packet shorter than an RTP header")
	}
	ssrc := rtpSSRC(pkt)
	if !sec.rxSSRCs.admit(ssrc) {
		return nil, errTooManyStreams
	}
	out, err := sec.rx.DecryptRTP(pkt[:0:cap(pkt)], pkt, &sec.hdr)
	if err != nil {
		return nil, err
	}
	if &out[0] != &pkt[0] {
		return nil, errNotInPlace
	}
	sec.rxSSRCs.add(ssrc)
	return out, nil
}

// errNotInPlace means pion/srtp wrote elsewhere than into the packet's
// buffer, which the relay sends from.
var errNotInPlace = errors.New("media: SRTP output not in place")

// encryptRTP encrypts pkt in place, growing it into its capacity by the
// auth tag. False means it could not: no room, or an SSRC beyond the
// bound.
func (sec *srtpSide) encryptRTP(pkt []byte) ([]byte, bool) {
	if len(pkt) < 12 || !sec.txSSRCs.admit(rtpSSRC(pkt)) {
		return nil, false
	}
	sec.txSSRCs.add(rtpSSRC(pkt))
	out, err := sec.tx.EncryptRTP(pkt[:0:cap(pkt)], pkt, &sec.hdr)
	if err != nil || &out[0] != &pkt[0] {
		return nil, false
	}
	return out, true
}

// decryptRTCP is decryptRTP for SRTCP (RFC 3711 §3.4).
func (sec *srtpSide) decryptRTCP(pkt []byte) ([]byte, error) {
	if len(pkt) < 8 {
		return nil, errors.New("media: SRTCP packet shorter than an RTCP header")
	}
	ssrc := rtcpSSRC(pkt)
	if !sec.rxRTCP.admit(ssrc) {
		return nil, errTooManyStreams
	}
	out, err := sec.rx.DecryptRTCP(pkt[:0:cap(pkt)], pkt, &sec.rtcpHdr)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || &out[0] != &pkt[0] {
		return nil, errNotInPlace
	}
	sec.rxRTCP.add(ssrc)
	return out, nil
}

// encryptRTCP is encryptRTP for SRTCP.
func (sec *srtpSide) encryptRTCP(pkt []byte) ([]byte, bool) {
	if len(pkt) < 8 || !sec.txSSRCs.admit(rtcpSSRC(pkt)) {
		return nil, false
	}
	sec.txSSRCs.add(rtcpSSRC(pkt))
	out, err := sec.tx.EncryptRTCP(pkt[:0:cap(pkt)], pkt, &sec.rtcpHdr)
	if err != nil || &out[0] != &pkt[0] {
		return nil, false
	}
	return out, true
}

func rtpSSRC(pkt []byte) uint32 {
	return uint32(pkt[8])<<24 | uint32(pkt[9])<<16 | uint32(pkt[10])<<8 | uint32(pkt[11])
}

func rtcpSSRC(pkt []byte) uint32 {
	return uint32(pkt[4])<<24 | uint32(pkt[5])<<16 | uint32(pkt[6])<<8 | uint32(pkt[7])
}

// SRTP returns the crypto suite side s speaks SRTP with, "" for plain RTP.
func (b *Bridge) SRTP(s Side) string {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	if sec := b.sides[s].sec; sec != nil {
		return sec.suite
	}
	return ""
}
