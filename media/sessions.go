package media

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
)

// Sessions makes the media Sessions of relayed calls: each opens a bridge
// and rewrites the call's SDP so that both sides send their RTP to parley.
type Sessions struct {
	open func() (bridge, error)
	// addr is announced in every SDP; invalid when the relay binds every
	// address and each side's is set (Session.SetAddress).
	addr  netip.Addr
	prefs []string
	log   *slog.Logger
	// newID returns o= session ids; tests make it predictable.
	newID func() uint64
	// openAt opens a bridge on given ports, for Restore; nil when the
	// bridges' maker cannot.
	openAt func(ports [2]int) (bridge, error)
}

// SessionsOption configures Sessions. Options check their value and may
// fail.
type SessionsOption func(*Sessions) error

// WithSessionsLogger sets the logger sessions log to. The default discards.
func WithSessionsLogger(l *slog.Logger) SessionsOption {
	return func(s *Sessions) error {
		if l == nil {
			return errors.New("media: nil logger")
		}
		s.log = l
		return nil
	}
}

// withOpenAt lets Restore open bridges on given ports with openAt. It is
// not exported since only this package can write a bridge.
func withOpenAt(openAt func(ports [2]int) (bridge, error)) SessionsOption {
	return func(s *Sessions) error {
		if openAt == nil {
			return errors.New("media: nil openAt")
		}
		s.openAt = openAt
		return nil
	}
}

// NewSessions returns Sessions whose bridges come from open, announced at
// addr in the SDP parley writes, relaying the codecs of prefs (codec names,
// telephone-event among them, as in rtp.codecs). The unspecified address
// (0.0.0.0, for a relay bound to every address) fixes none: each Session
// then announces to each side the address SetAddress gave for it.
func NewSessions(open func() (bridge, error), addr netip.Addr, prefs []string, opts ...SessionsOption) (*Sessions, error) {
	if open == nil {
		return nil, errors.New("media: sessions need a way to open bridges")
	}
	addr = addr.Unmap()
	if !addr.IsValid() {
		return nil, fmt.Errorf("media: relay address %v is not an address", addr)
	}
	if addr.IsUnspecified() {
		addr = netip.Addr{}
	}
	if !slices.ContainsFunc(prefs, func(p string) bool { return !strings.EqualFold(p, TelephoneEvent) }) {
		return nil, errors.New("media: relay needs at least one audio codec besides telephone-event")
	}
	s := &Sessions{
		open:  open,
		addr:  addr,
		prefs: append([]string(nil), prefs...),
		log:   slog.New(slog.DiscardHandler),
		// Session ids stay below 2^62 so that parsers reading them as
		// signed 64-bit numbers cope (RFC 4566 §5.2 suggests NTP time).
		newID: func() uint64 { return rand.Uint64N(1 << 62) },
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewRelaySessions returns Sessions whose bridges r opens. See NewSessions
// for addr and prefs; addr is normally the relay's own address, 0.0.0.0
// for a relay bound to every address.
func NewRelaySessions(r *Relay, addr netip.Addr, prefs []string, opts ...SessionsOption) (*Sessions, error) {
	if r == nil {
		return nil, errors.New("media: sessions need a relay")
	}
	openAt := withOpenAt(func(ports [2]int) (bridge, error) {
		b, err := r.OpenAt(ports)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
	return NewSessions(func() (bridge, error) {
		b, err := r.Open()
		if err != nil {
			// Not wrapped: ErrPortsExhausted must keep its SIPStatus.
			return nil, err
		}
		return b, nil
	}, addr, prefs, append([]SessionsOption{openAt}, opts...)...)
}

// New opens a bridge for a call and returns its Session, which the caller
// must Close. When the relay is out of ports the error is the relay's, whose
// SIPStatus says 503.
func (s *Sessions) New() (*Session, error) {
	br, err := s.open()
	if err != nil {
		return nil, err
	}
	if br == nil {
		return nil, errors.New("media: relay opened no bridge")
	}
	sess := &Session{br: br, addr: s.addr, prefs: s.prefs, log: s.log}
	sess.legs[SideA].id = s.newID()
	sess.legs[SideB].id = s.newID()
	return sess, nil
}
