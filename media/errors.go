package media

import (
	"errors"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// withDetail returns one of the *sipmsg.Error sentinels below with detail
// added to its Warning. The result is itself a *sipmsg.Error, so a caller
// that type-asserts for SIPStatus still finds the status, and it unwraps
// to the sentinel, so errors.Is holds.
func withDetail(sentinel error, detail string) error {
	return sentinel.(*sipmsg.Error).WithDetail(detail)
}

// Sentinel errors. Those that end a call setup are *sipmsg.Error values
// that carry the SIP status they map to, with their text as the Warning;
// the errors Answer, Session and Echo.Start return are those values (or
// copies with detail, see withDetail), never wrapped further.
var (
	// ErrBadSDP means an SDP body could not be parsed or lacks what RFC 4566
	// requires (400 Bad Request).
	ErrBadSDP error = sipmsg.Warn(400, "Bad Request", "media: malformed SDP")
	// ErrNoCommonCodec means the offer has no audio stream with a codec
	// parley accepts (488 Not Acceptable Here, RFC 3261 §21.4.26).
	ErrNoCommonCodec error = sipmsg.Warn(488, "Not Acceptable Here", "media: no codec in common")
	// ErrPortsExhausted means every RTP port of the pool is in use
	// (503 Service Unavailable, with Retry-After: 5).
	ErrPortsExhausted error = &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: "media: no free RTP port", RetryAfter: 5}

	// ErrBadPortRange means a port pool was asked for a range that holds no
	// even/odd port pair.
	ErrBadPortRange = errors.New("media: port range holds no RTP/RTCP pair")
	// ErrMediaTimeout is why a session ended when no RTP arrived for longer
	// than its timeout.
	ErrMediaTimeout = errors.New("media: no RTP received before the timeout")
	// ErrSessionClosed is why a session ended when its owner closed it.
	ErrSessionClosed = errors.New("media: session closed")
)

// Sentinel errors of the RTP relay.
var (
	// ErrRelayClosed means the relay's Run has returned (or is running
	// already, for a second Run): it opens no more bridges.
	ErrRelayClosed = errors.New("media: relay closed")
	// ErrRelayUnsupported means the relay does not run on this operating
	// system (it needs Linux's epoll).
	ErrRelayUnsupported = errors.New("media: RTP relay needs Linux")
)

// Sentinel errors of SDES-SRTP (RFC 4568), per leg of a relayed call. Each
// is a 488 whose Warning names the reason.
var (
	// ErrSRTPOff means a side offered RTP/SAVP, which needs SRTP, and
	// rtp.srtp is off.
	ErrSRTPOff error = sipmsg.Warn(488, "Not Acceptable Here", "SRTP is off (rtp.srtp)")
	// ErrSRTPRequired means a side offered or answered without SRTP and
	// rtp.srtp is mandatory.
	ErrSRTPRequired error = sipmsg.Warn(488, "Not Acceptable Here", "SRTP is mandatory (rtp.srtp)")
	// ErrBadCrypto means an a=crypto line is malformed or its key has the
	// wrong length for its suite.
	ErrBadCrypto error = sipmsg.Warn(488, "Not Acceptable Here", "media: bad a=crypto")
	// ErrNoCryptoSuite means an RTP/SAVP stream offers no crypto suite
	// parley supports.
	ErrNoCryptoSuite error = sipmsg.Warn(488, "Not Acceptable Here", "media: no SRTP crypto suite in common")
	// ErrSRTPUnsupported means an RTP/SAVP offer reached one of parley's
	// own services (echo, rooms, playback), which speak plain RTP only.
	ErrSRTPUnsupported error = sipmsg.Warn(488, "Not Acceptable Here", "media: SRTP is not available here")
)
