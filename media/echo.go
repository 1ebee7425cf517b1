package media

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// bindAttempts bounds how many ports one bind tries when ports are taken
// by other programs: the pool hands those out like any other and the
// binder releases each (it goes to the back of the queue) and tries the
// next. A block of ports another program holds inside rtp.port_min and
// rtp.port_max costs a few failed binds, not a failed call.
func bindAttempts(p *PortPool) int { return max(4, min(p.Size(), 256)) }

// Echo is the echo service: it answers a call itself and sends every RTP
// packet back to where it came from, so a caller hears themself and can
// check their audio path. Each call is one EchoSession.
type Echo struct {
	pool    *PortPool
	addr    netip.Addr
	prefs   []string
	timeout time.Duration
	log     *slog.Logger
}

// NewEcho returns an echo service that takes ports from pool, binds them on
// addr (which its SDP answers announce) and accepts the codecs of prefs, in
// that order of preference. The unspecified address (0.0.0.0) binds every
// address; each answer then announces the address StartAt is given.
func NewEcho(pool *PortPool, addr netip.Addr, prefs []string, opts ...EchoOption) (*Echo, error) {
	if pool == nil {
		return nil, errors.New("media: echo needs a port pool")
	}
	addr = addr.Unmap()
	if !addr.IsValid() {
		return nil, fmt.Errorf("media: echo address %v is not an address", addr)
	}
	if len(prefs) == 0 {
		return nil, errors.New("media: echo needs at least one codec")
	}
	e := &Echo{
		pool:  pool,
		addr:  addr,
		prefs: append([]string(nil), prefs...),
		log:   slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Start answers offer and starts echoing RTP on a port of the pool. The
// caller owns the session and must Close it. Errors that should fail the
// INVITE (ErrBadSDP, ErrNoCommonCodec, ErrPortsExhausted) are returned as
// *sipmsg.Error values, not wrapped, so their SIP status is on the error
// itself. An echo bound to every address needs StartAt instead.
func (e *Echo) Start(offer []byte) (answer []byte, sess *EchoSession, err error) {
	return e.StartAt(offer, netip.Addr{})
}

// StartAt is Start for a caller that faces local address local: an echo
// bound to every address announces it in its answer. An echo bound to one
// address announces that one, whatever local says.
func (e *Echo) StartAt(offer []byte, local netip.Addr) (answer []byte, sess *EchoSession, err error) {
	announce := e.addr
	if announce.IsUnspecified() {
		announce = local.Unmap()
		if !announce.IsValid() || announce.IsUnspecified() {
			return nil, nil, errors.New("media: echo bound to every address needs the caller's local address")
		}
	}
	port, rtpConn, rtcpConn, err := BindPair(e.pool, e.addr)
	if err != nil {
		return nil, nil, err
	}
	// Session ids need only be unique; keep them below 2^63 for parsers
	// that read them as signed.
	answer, neg, err := Answer(offer, e.prefs, announce, port, rand.Uint64()>>1)
	if err != nil {
		rtpConn.Close()
		rtcpConn.Close()
		e.pool.Release(port)
		return nil, nil, err
	}
	s := newEchoSession(e, port, rtpConn, rtcpConn, neg)
	go s.run()
	return answer, s, nil
}

// bind acquires a port and binds RTP on it and RTCP on the next one.
func (e *Echo) bind() (int, *net.UDPConn, *net.UDPConn, error) {
	return BindPair(e.pool, e.addr)
}
