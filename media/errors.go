package media

import "errors"

// statusError is a media failure that becomes a SIP response. dialog finds
// the status through SIPStatus without importing this package.
type statusError struct {
	msg    string
	code   int
	reason string
}

func (e *statusError) Error() string { return e.msg }

// SIPStatus returns the SIP response code and reason phrase a request that
// failed with this error should get.
func (e *statusError) SIPStatus() (int, string) { return e.code, e.reason }

// detailError adds detail to a sentinel while keeping both errors.Is and the
// sentinel's SIP status on the error value itself, so a caller that only
// type-asserts for SIPStatus still finds it.
type detailError struct {
	sentinel *statusError
	detail   string
}

func (e *detailError) Error() string            { return e.sentinel.msg + ": " + e.detail }
func (e *detailError) Unwrap() error            { return e.sentinel }
func (e *detailError) SIPStatus() (int, string) { return e.sentinel.SIPStatus() }

// withDetail wraps one of the statusError sentinels below.
func withDetail(sentinel error, detail string) error {
	return &detailError{sentinel: sentinel.(*statusError), detail: detail}
}

// Sentinel errors. Those that end a call setup carry the SIP status they map
// to (see the SIPStatus method on the errors Answer and Echo.Start return).
var (
	// ErrBadSDP means an SDP body could not be parsed or lacks what RFC 4566
	// requires (400 Bad Request).
	ErrBadSDP error = &statusError{msg: "media: malformed SDP", code: 400, reason: "Bad Request"}
	// ErrNoCommonCodec means the offer has no audio stream with a codec
	// parley accepts (488 Not Acceptable Here, RFC 3261 §21.4.26).
	ErrNoCommonCodec error = &statusError{msg: "media: no codec in common", code: 488, reason: "Not Acceptable Here"}
	// ErrPortsExhausted means every RTP port of the pool is in use
	// (503 Service Unavailable).
	ErrPortsExhausted error = &statusError{msg: "media: no free RTP port", code: 503, reason: "Service Unavailable"}

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
